/** What every scenario gets, and what it fills in. */
import type { BenchConfig } from './config.ts';
import type { Row } from './report.ts';
import type { Fakes, Fixtures } from './servers.ts';

export interface Ctx {
  config: BenchConfig;
  fx: Fixtures;
  fakes: Fakes;
  /** Figures later scenarios compare with. */
  shared: { armhookJsonRps?: number; armhookSseRps?: number };
  log(message: string): void;
}

/** Filled in as the scenario goes, so a failure part-way still reports what was measured. */
export interface ScenarioOutput {
  rows: Row[];
  notes: string[];
  raw: Record<string, unknown>;
}

export interface Scenario {
  id: string;
  title: string;
  /** Upper bound on its run time, ms (it is stopped and reported as failed past it). */
  budgetMs(config: BenchConfig): number;
  run(ctx: Ctx, out: ScenarioOutput): Promise<void>;
}
