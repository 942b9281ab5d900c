#!/usr/bin/env node
// The `dac` command line. Exit codes: 0 success, 1 bad input or a failed
// operation (one line on stderr saying why), 2 a mistake in the command line.
import { toDacError } from '../errors.js';
import { benchHelp, runBench } from './bench.js';
import { compareHelp, runCompare } from './compare.js';
import { UsageError } from './common.js';
import { decomposeHelp, runDecompose } from './decompose.js';
import { demoHelp, runDemo } from './demo.js';
import { inspectHelp, runInspect } from './inspect.js';
import { runZooCommand, zooHelp } from './zoo-command.js';

const commands: Record<string, { run: (args: string[]) => Promise<number>; help: string; summary: string }> = {
  inspect: { run: runInspect, help: inspectHelp, summary: 'per-conv cost and DAC spectral energy of a model' },
  decompose: { run: runDecompose, help: decomposeHelp, summary: 'replace convs by cheaper pairs and write the model' },
  compare: { run: runCompare, help: compareHelp, summary: 'run two models on the same inputs and compare outputs' },
  demo: { run: runDemo, help: demoHelp, summary: 'decompose the embedded demo model; accuracy, MACs, latency' },
  bench: { run: runBench, help: benchHelp, summary: 'time every conv and its replacements (and the whole model) on this device' },
  zoo: { run: runZooCommand, help: zooHelp, summary: 'decompose every model under a folder (parallel, resumable)' },
};

const mainHelp = `Usage: dac-conv <command> [options]

Data-free acceleration of pretrained CNNs (DAC, Li et al., WACV 2019) for
TF.js Layers models (a folder with model.json) and ONNX models (.onnx).

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run 'dac-conv <command> --help' for a command's options.
Environment: DAC_BACKEND=native|wasm forces the decomposition backend;
DAC_TFJS_BACKEND=tensorflow|wasm|cpu the TF.js runtime.
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    if (cmd === 'help' && rest[0] && commands[rest[0]]) process.stdout.write(commands[rest[0]].help);
    else process.stdout.write(mainHelp);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-v') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    process.stdout.write(`${(require('../../package.json') as { version: string }).version}\n`);
    return 0;
  }
  const command = commands[cmd];
  if (!command) {
    process.stderr.write(`dac: unknown command '${cmd}' (commands: ${Object.keys(commands).join(', ')}; see dac --help)\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`dac ${cmd}: ${err.message} (see dac-conv ${cmd} --help)\n`);
      return 2;
    }
    // File-system errors become EIO/EACCES naming the path; anything else untyped is a bug (EINTERNAL).
    const e = toDacError(err);
    process.stderr.write(`dac ${cmd}: ${e.message.split('\n')[0]}\n`);
    if (process.env.DAC_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`dac: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
