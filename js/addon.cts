// This thread's instance of the compiled addon, loaded once by the first module that needs it.
import { loadNative } from './load.cjs';

export const native = loadNative();
