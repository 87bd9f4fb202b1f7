import { formatBytes, formatRate } from '../stats.js';
import type { BenchReport } from './schema.js';

export function renderMarkdown(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(`# mamba-ts bench — ${r.model.name} on ${r.backend.name} (${r.backend.device})`, '');
  lines.push(
    `Model: d_model ${r.model.hiddenSize}, ${r.model.numLayers} layers, ${(r.model.parameters / 1e6).toFixed(2)}M parameters. ` +
      `Training batch ${r.settings.batchSize} × ${r.settings.seqLen} tokens, median of ${r.settings.steps} steps after ${r.settings.warmup} warm-up${r.settings.recompute === 'none' ? '' : `, ${r.settings.recompute} recomputation`}.`,
    '',
  );
  if (r.training.length > 0) {
    lines.push('## Fine-tuning', '');
    lines.push('| mode | tokens/s (median) | min–max | × fp32 | peak bytes | bytes/token | −mem/token vs fp32 | weights | grads | optimizer | activations | trainable params | final loss |');
    lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const t of r.training) {
      const ratio = r.ratios.find((x) => x.mode === t.mode);
      lines.push(
        `| ${t.mode} | ${formatRate(t.tokensPerSecond.median)} | ${formatRate(t.tokensPerSecond.min)}–${formatRate(t.tokensPerSecond.max)} | ` +
          `${ratio ? ratio.tokensPerSecond.toFixed(2) : '—'} | ${formatBytes(t.peakBytes)} | ${formatBytes(t.peakBytesPerToken)} | ` +
          `${ratio ? `${(100 * ratio.memoryPerTokenReduction).toFixed(1)}%` : '—'} | ${formatBytes(t.memory.weights)} | ${formatBytes(t.memory.gradients)} | ` +
          `${formatBytes(t.memory.optimizer)} | ${formatBytes(t.memory.activations)} | ${t.trainableParameters.toLocaleString('en-US')} | ` +
          `${Number.isFinite(t.finalLoss) ? t.finalLoss.toFixed(4) : String(t.finalLoss)}${t.skippedSteps ? ` (${t.skippedSteps} skipped)` : ''} |`,
      );
    }
    lines.push('', `Paper (${r.paper.source}): ${r.paper.tokensPerSecondRatio}× tokens/s and ${(100 * r.paper.memoryPerTokenReduction).toFixed(1)}% less memory per token for ${r.paper.mode}.`, '');
  }
  if (r.inference.length > 0) {
    lines.push('## Inference', '', '| mode | batch | tokens/s (median) | min–max | whole run | peak bytes | how |', '|---|---|---|---|---|---|---|');
    for (const i of r.inference) {
      const how = i.mode === 'decode' ? [i.dtype, i.fused ? 'fused step' : 'model.step', i.graph ? 'graph replay' : 'eager'].join(', ') : '';
      lines.push(`| ${i.mode} | ${i.batchSize} | ${formatRate(i.tokensPerSecond.median)} | ${formatRate(i.tokensPerSecond.min)}–${formatRate(i.tokensPerSecond.max)} | ${formatRate(i.wholeRunTokensPerSecond)} | ${formatBytes(i.peakBytes)} | ${how} |`);
    }
    lines.push('');
  }
  if (r.scaling.length > 0) {
    lines.push('## Scaling (full fp32 training step; the Transformer has the same width and half the layers)', '', '| model | batch | seq len | tokens/s | bytes/token |', '|---|---|---|---|---|');
    for (const p of r.scaling) {
      const figures = p.error ? `${p.error} | — |` : `${formatRate(p.tokensPerSecond)} | ${formatBytes(p.peakBytesPerToken)} |`;
      lines.push(`| ${p.model} | ${p.batchSize} | ${p.seqLen} | ${figures}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
