// The planner's buffer pool (src/plan/scratch.ts): reuse inside within(), nothing kept outside it.
import t from 'tap';
import { ScratchPool, scratchFor } from '../src/plan/scratch.js';

t.test('within(): a buffer given back serves the next take that fits; the smallest that fits is lent', async (t) => {
  const pool = new ScratchPool();
  pool.within(() => {
    const a = pool.take(100);
    const b = pool.take(50);
    t.equal(a.length, 100);
    t.not(a.buffer, b.buffer, 'two lent at once are two buffers');
    pool.give(a);
    pool.give(b);
    const c = pool.take(40);
    t.equal(c.buffer, b.buffer, 'the smaller of the two that fit');
    t.equal(c.length, 40, 'a view of the length asked for');
    const d = pool.take(100);
    t.equal(d.buffer, a.buffer);
    pool.give(c);
    pool.give(c);
    const e = pool.take(30);
    const f = pool.take(30);
    t.equal(e.buffer, b.buffer, 'a buffer given back twice is lent once');
    t.not(f.buffer, b.buffer);
    pool.give(e);
    const g = pool.take(200);
    t.equal(g.length, 200, 'none fits: a new one');
    t.not(pool.take(30).buffer, b.buffer, 'and the smaller free ones were let go');
  });
});

t.test('outside within() nothing is kept; the outermost within() empties the pool', async (t) => {
  const pool = new ScratchPool();
  const a = pool.take(10);
  pool.give(a);
  t.not(pool.take(10).buffer, a.buffer, 'no reuse outside within()');
  let kept: Float64Array | null = null;
  pool.within(() => {
    pool.within(() => {
      kept = pool.take(10);
      pool.give(kept);
    });
    t.equal(pool.take(10).buffer, kept!.buffer, 'an inner within() keeps the pool open');
    pool.give(kept!);
  });
  pool.within(() => t.not(pool.take(10).buffer, kept!.buffer, 'emptied when the outermost returned'));
  t.throws(() => pool.within(() => { throw new Error('boom'); }), /boom/);
  pool.within(() => t.equal(pool.take(1).length, 1, 'usable after a throw'));
});

t.test('scratchFor: one pool per conv list; anything else gets a pool of its own', async (t) => {
  const convs: unknown[] = [];
  t.equal(scratchFor(convs), scratchFor(convs));
  t.not(scratchFor(convs), scratchFor([]));
  t.not(scratchFor(null), scratchFor(null));
});
