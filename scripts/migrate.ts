/** npm run migrate: apply migrations to DATABASE_URL (or the PGlite data dir) and exit. */
import 'dotenv/config';
import { loadConfig } from '../server/src/config.ts';
import { openDatabase } from '../server/src/db/client.ts';

const config = loadConfig();
const db = await openDatabase({ url: config.db.url, dataDir: config.db.dataDir });
await db.migrate();
await db.close();
console.log(`migrations applied (${db.kind})`);
