import { arcChallenge, arcEasy } from './arc.js';
import { hellaswag } from './hellaswag.js';
import { lambadaOpenai } from './lambada.js';
import { MMLU_CATEGORIES, MMLU_SUBJECTS, mmluSubjectTask } from './mmlu.js';
import { openbookqa } from './openbookqa.js';
import { piqa } from './piqa.js';
import type { TaskDefinition } from './task.js';
import { winogrande } from './winogrande.js';

const STANDALONE: readonly TaskDefinition[] = [lambadaOpenai, hellaswag, piqa, arcEasy, arcChallenge, winogrande, openbookqa];

/** A requested task or group; groups hold their children (the harness's task hierarchy). */
export type TaskNode =
  | { kind: 'task'; name: string; task: TaskDefinition }
  | { kind: 'group'; name: string; alias?: string; children: TaskNode[] };

/** Every name `resolveTasks` accepts. */
export function knownTaskNames(): string[] {
  return [
    ...STANDALONE.map((t) => t.name),
    'mmlu',
    ...MMLU_CATEGORIES.map((c) => `mmlu_${c}`),
    ...Object.keys(MMLU_SUBJECTS).map((s) => `mmlu_${s}`),
  ];
}

function mmluCategoryNode(category: string): TaskNode {
  const subjects = Object.keys(MMLU_SUBJECTS).filter((s) => MMLU_SUBJECTS[s] === category);
  return {
    kind: 'group',
    name: `mmlu_${category}`,
    alias: category,
    children: subjects.map((s) => taskNode(mmluSubjectTask(s))),
  };
}

function taskNode(task: TaskDefinition): TaskNode {
  return { kind: 'task', name: task.name, task };
}

function resolveOne(name: string): TaskNode {
  const standalone = STANDALONE.find((t) => t.name === name);
  if (standalone) return taskNode(standalone);
  if (name === 'mmlu') return { kind: 'group', name, children: MMLU_CATEGORIES.map(mmluCategoryNode) };
  if (name.startsWith('mmlu_')) {
    const rest = name.slice('mmlu_'.length);
    if ((MMLU_CATEGORIES as readonly string[]).includes(rest)) return mmluCategoryNode(rest);
    if (rest in MMLU_SUBJECTS) return taskNode(mmluSubjectTask(rest));
  }
  throw new Error(
    `Unknown task "${name}"; known tasks: ${STANDALONE.map((t) => t.name).join(', ')}, mmlu, ` +
      `${MMLU_CATEGORIES.map((c) => `mmlu_${c}`).join(', ')}, and mmlu_<subject> for the 57 MMLU subjects ` +
      `(${Object.keys(MMLU_SUBJECTS).slice(0, 3).join(', ')}, ...).`,
  );
}

/**
 * Resolves requested names into the task tree, top level sorted by name as the harness's `pattern_match` does.
 * A task requested twice (directly and through a group) is evaluated once.
 */
export function resolveTasks(names: readonly string[]): TaskNode[] {
  if (names.length === 0) throw new Error(`No tasks given; known tasks: ${knownTaskNames().slice(0, 12).join(', ')}, ...`);
  const unique = [...new Set(names.map((n) => n.trim()))].sort();
  const nodes = unique.map(resolveOne);
  const covered = new Set<string>();
  const collect = (n: TaskNode) => {
    covered.add(n.name);
    if (n.kind === 'group') n.children.forEach(collect);
  };
  for (const n of nodes) if (n.kind === 'group') n.children.forEach(collect);
  return nodes.filter((n) => !covered.has(n.name));
}

/** The leaf tasks of a tree, depth first, each once. */
export function leafTasks(nodes: readonly TaskNode[]): TaskDefinition[] {
  const seen = new Map<string, TaskDefinition>();
  const walk = (n: TaskNode) => {
    if (n.kind === 'task') {
      if (!seen.has(n.name)) seen.set(n.name, n.task);
    } else n.children.forEach(walk);
  };
  nodes.forEach(walk);
  return [...seen.values()];
}

/** Looks up a single task definition by name (standalone tasks and MMLU subjects). */
export function getTask(name: string): TaskDefinition {
  const node = resolveOne(name);
  if (node.kind !== 'task') throw new Error(`"${name}" is a group, not a single task.`);
  return node.task;
}
