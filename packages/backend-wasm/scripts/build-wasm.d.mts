export declare const ASC_FLAGS: string[];
/** Hash of the AssemblyScript sources and compiler flags. */
export declare function sourceHash(): string;
/** The hash recorded in src/generated/kernels-wasm.ts, or null when the file is missing. */
export declare function generatedHash(): string | null;
/** Compiles assembly/ and regenerates src/generated/kernels-wasm.ts. */
export declare function buildWasm(): Promise<{ bytes: number }>;
