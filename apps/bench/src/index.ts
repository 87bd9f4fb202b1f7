export { main } from './main.js';
export { runBench, estimateTrainingBytes, parameterCount } from './run.js';
export { parseBenchArgs, MODES, TRAIN_MODES, BenchUsageError, type BenchOptions } from './options.js';
export { renderMarkdown } from './report/markdown.js';
export { renderHtml } from './report/html.js';
export type { BenchReport, ScalingPoint } from './report/schema.js';
