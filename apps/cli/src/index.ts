import { helpText, type CommandSpec } from './args.js';
import { UsageError } from './cli-error.js';
import { generateCommand, generateSpec } from './commands/generate.js';
import { logitsCommand, logitsSpec } from './commands/logits.js';
import { evalCommand, evalCompareCommand, evalCompareSpec, evalSpec } from './commands/eval.js';
import { finetuneCommand, finetuneSpec, stabilityCommand, stabilitySpec } from './commands/finetune.js';

export { registerBackendLoader, useBackend, describeBackend, BACKENDS } from './backends.js';
export { registerModelLoader, loadModel, type CliModel } from './models.js';
export { UsageError } from './cli-error.js';

interface Command {
  spec: CommandSpec;
  run: (argv: string[]) => Promise<void>;
}

const COMMANDS: Command[] = [
  { spec: generateSpec, run: generateCommand },
  { spec: logitsSpec, run: logitsCommand },
  { spec: finetuneSpec, run: finetuneCommand },
  { spec: stabilitySpec, run: stabilityCommand },
  { spec: evalSpec, run: evalCommand },
  { spec: evalCompareSpec, run: evalCompareCommand },
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length));
  return [
    'mamba-ts — run, fine-tune and evaluate Mamba language models',
    '',
    'Usage: mamba-ts <command> [options]   (mamba-ts <command> --help for details)',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}  ${c.spec.summary}`),
  ].join('\n');
}

/** Runs the CLI; returns the exit code. User mistakes print one sentence, never a stack trace. */
export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const command = COMMANDS.find((c) => c.spec.name === name);
  if (!command) {
    console.error(`mamba-ts: unknown command "${name}"; commands: ${COMMANDS.map((c) => c.spec.name).join(', ')}.`);
    return 1;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (process.env.MAMBA_TS_DEBUG) console.error(err.stack);
    else console.error(`mamba-ts ${name}: ${err.message}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

export { helpText };
