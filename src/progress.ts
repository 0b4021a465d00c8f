/**
 * How the pipeline tells the outside world what it is doing. The pipeline only calls this interface;
 * the CLI decides whether that becomes a spinner, JSON lines, or nothing.
 */
export interface Reporter {
  stageStart(stage: string, text: string): void;
  stageUpdate(stage: string, text: string): void;
  /** How far a long stage has got, in bytes; at most a few calls a second. */
  stageProgress(stage: string, done: number, total: number): void;
  stageEnd(stage: string, seconds: number, summary?: string): void;
  stageFail(stage: string, seconds: number, message: string): void;
  /** A line of tool output (a build log), shown verbosely or kept for the failure report. */
  log(stage: string, line: string): void;
}

export const silentReporter: Reporter = {
  stageStart() {},
  stageUpdate() {},
  stageProgress() {},
  stageEnd() {},
  stageFail() {},
  log() {},
};

export interface StageTiming {
  stage: string;
  seconds: number;
}

/** Least time between two progress reports of a stage: enough for a spinner, not a flood of JSON lines. */
const PROGRESS_INTERVAL_MS = 250;

export type ProgressFn = (done: number, total: number) => void;

/** Runs one named stage: reports its start, end and duration, and records the timing. */
export class StageRunner {
  readonly timings: StageTiming[] = [];
  constructor(private readonly reporter: Reporter) {}

  async run<T>(
    stage: string,
    text: string,
    fn: (update: (text: string) => void, progress: ProgressFn) => Promise<T>,
    summary?: (r: T) => string,
  ): Promise<T> {
    const t0 = performance.now();
    this.reporter.stageStart(stage, text);
    let lastProgress = t0;
    const progress: ProgressFn = (done, total) => {
      const now = performance.now();
      if (now - lastProgress < PROGRESS_INTERVAL_MS) return;
      lastProgress = now;
      this.reporter.stageProgress(stage, done, total);
    };
    try {
      const result = await fn((t) => this.reporter.stageUpdate(stage, t), progress);
      const seconds = (performance.now() - t0) / 1000;
      this.timings.push({ stage, seconds });
      this.reporter.stageEnd(stage, seconds, summary?.(result));
      return result;
    } catch (e) {
      const seconds = (performance.now() - t0) / 1000;
      this.reporter.stageFail(stage, seconds, (e as Error).message);
      throw e;
    }
  }

  log(stage: string, line: string): void {
    this.reporter.log(stage, line);
  }
}
