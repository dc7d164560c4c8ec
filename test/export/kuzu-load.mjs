// Load Cypher statements into a fresh Kùzu database and answer queries, printing the answers as
// JSON on stdout. Run in a child process: Kùzu's native threads can crash a process at exit, which
// must not take a test worker down with it. Usage: node kuzu-load.mjs <db dir> <statements file> <queries json file>
import { readFileSync } from 'node:fs';
import process from 'node:process';
import kuzu from 'kuzu';

const [dir, statementsFile, queriesFile] = process.argv.slice(2);
const db = new kuzu.Database(dir);
const conn = new kuzu.Connection(db);
for (const line of readFileSync(statementsFile, 'utf8').split('\n')) {
  if (line.trim() === '' || line.startsWith('//')) continue;
  await conn.query(line);
}
const answers = [];
for (const q of JSON.parse(readFileSync(queriesFile, 'utf8'))) answers.push(await (await conn.query(q)).getAll());
process.stdout.write(`${JSON.stringify(answers, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`, () => process.exit(0));
