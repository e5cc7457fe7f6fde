import { join } from 'node:path';
/** The conntrail command line, as built by `npm run build`. */
export const CONNTRAIL = [process.execPath, join(process.cwd(), 'dist', 'src', 'cli', 'main.js')];
