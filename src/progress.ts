/**
 * How the pipeline tells the outside world what it is doing. The pipeline only calls this interface;
 * the CLI decides whether that becomes a spinner, JSON lines, or nothing.
 */
export interface Reporter {
  stageStart(stage: string, text: string): void;
  stageUpdate(stage: string, text: string): void;
  stageEnd(stage: string, seconds: number, summary?: string): void;
  stageFail(stage: string, seconds: number, message: string): void;
  /** A line of tool output (a build log), shown verbosely or kept for the failure report. */
  log(stage: string, line: string): void;
}

export const silentReporter: Reporter = {
  stageStart() {},
  stageUpdate() {},
  stageEnd() {},
  stageFail() {},
  log() {},
};

export interface StageTiming {
  stage: string;
  seconds: number;
}

/** Runs one named stage: reports its start, end and duration, and records the timing. */
export class StageRunner {
  readonly timings: StageTiming[] = [];
  constructor(private readonly reporter: Reporter) {}

  async run<T>(stage: string, text: string, fn: (update: (text: string) => void) => Promise<T>, summary?: (r: T) => string): Promise<T> {
    const t0 = performance.now();
    this.reporter.stageStart(stage, text);
    try {
      const result = await fn((t) => this.reporter.stageUpdate(stage, t));
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
