// CUDA graphs: the work enqueued between captureBegin and captureEnd, replayed later with one call. Everything the
// captured kernels allocate comes from a private pool of the allocator, so the graph's addresses stay its own.
#pragma once

namespace mcuda {

bool capturing();
/** Starts capturing the stream (relaxed mode). Throws if a capture is already in progress. */
void captureBegin();
/** Ends the capture and instantiates the graph; returns its id. Throws (and discards the capture) on failure. */
int captureEnd();
/** Ends a capture without keeping it (after an error while recording). */
void captureAbort();
void graphLaunch(int id);
/** Waits for the stream, frees the graph and returns its pool's memory to the shared cache. */
void graphDestroy(int id);

}  // namespace mcuda
