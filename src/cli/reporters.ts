import ora, { type Ora } from 'ora';
import type { Reporter } from '../progress.js';

const fmt = (s: number) => `${s.toFixed(1)}s`;
const mb = (bytes: number) => `${Math.round(bytes / 1e6)} MB`;

/** A spinner per stage, for people at a terminal. */
export class SpinnerReporter implements Reporter {
  private spinner: Ora | undefined;
  private label = '';

  constructor(private readonly verbose: boolean) {}

  stageStart(_stage: string, text: string): void {
    this.label = text;
    this.spinner = ora({ text, stream: process.stderr }).start();
  }
  stageUpdate(_stage: string, text: string): void {
    if (this.spinner) this.spinner.text = `${this.label}: ${text}`;
  }
  stageProgress(_stage: string, done: number, total: number): void {
    if (this.spinner) this.spinner.text = `${this.label}: ${mb(done)} of ${mb(total)}`;
  }
  stageEnd(_stage: string, seconds: number, summary?: string): void {
    this.spinner?.succeed(`${this.label} (${fmt(seconds)})${summary ? `: ${summary}` : ''}`);
    this.spinner = undefined;
  }
  stageFail(_stage: string, seconds: number): void {
    this.spinner?.fail(`${this.label} (${fmt(seconds)})`);
    this.spinner = undefined;
  }
  log(_stage: string, line: string): void {
    if (this.verbose) {
      if (this.spinner) this.spinner.clear();
      process.stderr.write(`  ${line}\n`);
      this.spinner?.render();
    }
  }
}

/** One line per finished stage, for logs that are not terminals (CI). */
export class PlainReporter implements Reporter {
  private labels = new Map<string, string>();
  constructor(private readonly verbose: boolean) {}
  stageStart(stage: string, text: string): void {
    this.labels.set(stage, text);
    process.stderr.write(`- ${text}...\n`);
  }
  stageUpdate(): void {}
  // A log file gets the stage's start and end; progress lines would only bury them.
  stageProgress(): void {}
  stageEnd(stage: string, seconds: number, summary?: string): void {
    process.stderr.write(`✔ ${this.labels.get(stage)} (${fmt(seconds)})${summary ? `: ${summary}` : ''}\n`);
  }
  stageFail(stage: string, seconds: number): void {
    process.stderr.write(`✖ ${this.labels.get(stage)} (${fmt(seconds)})\n`);
  }
  log(_stage: string, line: string): void {
    if (this.verbose) process.stderr.write(`  ${line}\n`);
  }
}

/** JSON lines on stdout, for pipelines: one object per event, nothing else on stdout. */
export class JsonReporter implements Reporter {
  static emit(event: Record<string, unknown>): void {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  }
  stageStart(stage: string, text: string): void {
    JsonReporter.emit({ event: 'stage', stage, status: 'start', text });
  }
  stageUpdate(): void {}
  stageProgress(stage: string, done: number, total: number): void {
    JsonReporter.emit({ event: 'progress', stage, done, total });
  }
  stageEnd(stage: string, seconds: number, summary?: string): void {
    JsonReporter.emit({ event: 'stage', stage, status: 'done', seconds: Number(seconds.toFixed(3)), summary });
  }
  stageFail(stage: string, seconds: number, message: string): void {
    JsonReporter.emit({ event: 'stage', stage, status: 'failed', seconds: Number(seconds.toFixed(3)), message });
  }
  log(stage: string, line: string): void {
    JsonReporter.emit({ event: 'log', stage, line });
  }
}
