// Types of entry.js for the TypeScript that imports it (the bench).
export function runsCompiled(module?: string): boolean;
export function runEntry(module: string): Promise<void>;
