import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StageRunner, type Reporter } from '../../src/progress.js';

function recorder(): Reporter & { progress: Array<[string, number, number]>; ends: string[] } {
  const progress: Array<[string, number, number]> = [];
  const ends: string[] = [];
  return {
    progress,
    ends,
    stageStart() {},
    stageUpdate() {},
    stageProgress: (stage, done, total) => progress.push([stage, done, total]),
    stageEnd: (stage) => ends.push(stage),
    stageFail() {},
    log() {},
  };
}

describe('stage progress', () => {
  // The clock is the test's: the rate limit is checked against time it moves, never against the machine's load.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['performance', 'Date', 'setTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('passes on at most one report per quarter second, the latest figures at that moment', async () => {
    const rec = recorder();
    const stages = new StageRunner(rec);
    await stages.run('vmdk', 'Writing', async (_update, progress) => {
      for (let i = 1; i <= 1000; i++) progress(i, 1000);
      expect(rec.progress).toEqual([]); // all within the first quarter second of the stage
      vi.advanceTimersByTime(300);
      progress(1001, 2000);
      progress(1002, 2000);
      vi.advanceTimersByTime(300);
      progress(1500, 2000);
    });
    expect(rec.progress).toEqual([
      ['vmdk', 1001, 2000],
      ['vmdk', 1500, 2000],
    ]);
    expect(rec.ends).toEqual(['vmdk']);
  });
});
