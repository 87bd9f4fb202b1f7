export { PythonRandom, bitLength } from './python-random.js';
export { pyStrip, pyLstrip, pyRstrip, pyCapitalize, codePointLength } from './python-str.js';
export {
  encodePair,
  truncateLeft,
  type EncodedPair,
  type LanguageModel,
  type LoglikelihoodOptions,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
  type ModelInput,
  type TokenizedLanguageModel,
  type TokenizerInfo,
} from './language-model.js';
export {
  TokenScoringModel,
  groupByContext,
  perPairScorer,
  scoreFromLogits,
  type ContextGroup,
  type ScoreGroupsFn,
  type TokenScore,
  type TokenScoringModelOptions,
} from './token-scoring-model.js';
export {
  TARGET_DELIMITER,
  FEWSHOT_DELIMITER,
  buildRequests,
  demoText,
  demoTarget,
  formatDemos,
  goldIndex,
  isMultipleInput,
  type Doc,
  type FieldSpec,
  type MetricName,
  type Request,
  type TaskDefinition,
} from './tasks/task.js';
export { hellaswagPreprocess } from './tasks/hellaswag.js';
export { MMLU_SUBJECTS, MMLU_CATEGORIES, mmluSubjectTask, type MmluCategory } from './tasks/mmlu.js';
export { getTask, knownTaskNames, leafTasks, resolveTasks, type TaskNode } from './tasks/registry.js';
export { applyLimit, dataFilePath, describeSchema, loadSplit } from './data.js';
export { FEWSHOT_SEED, FewshotSampler, deepEqual, fewshotPrefix } from './fewshot.js';
export {
  argmax,
  bootstrapStderr,
  mean,
  meanStderr,
  multipleChoiceMetrics,
  perplexity,
  pooledStderr,
  pySum,
  sampleStddev,
  weightedMean,
} from './metrics.js';
export { formatMarkdown, metricValue, type EvalResults, type ResultEntry, type Stderr } from './results.js';
export {
  buildTaskRequests,
  runEval,
  scoreDocument,
  type DocRecord,
  type EvalProgress,
  type RunEvalOptions,
} from './evaluator.js';
export {
  HEADLINE_METRICS,
  compareResults,
  formatComparisonMarkdown,
  formatIclMarkdown,
  headlineMetric,
  iclGains,
  runEvalSweep,
  shotCount,
  type IclComparison,
  type IclOptions,
  type IclReport,
  type IclScores,
  type IclSource,
} from './icl.js';
export {
  associativeRecallTask,
  evaluateSynthetic,
  formatKShot,
  inductionTask,
  syntheticRequests,
  type AssociativeRecallOptions,
  type InductionOptions,
  type SyntheticEvalOptions,
  type SyntheticExample,
  type SyntheticQuery,
  type SyntheticResult,
  type SyntheticTask,
} from './synthetic.js';
export { mambaLanguageModel, type ModelScoringOptions } from './models/mamba.js';
export { transformerLanguageModel } from './models/transformer.js';
