/**
 * CLI commands for objects: put, objects, versions, derive, register, asof, lineage, materialize,
 * policy and gc.
 */
import type { Command } from 'commander';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { startRun } from '../capture/run.js';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';
import { getAsOf } from '../objects/asof.js';
import { lineage, renderLineageTree } from '../objects/lineage.js';
import { formatPolicy, gc, listPolicies, materialize, setPolicy } from '../objects/materialize.js';
import { deriveObject, listObjectVersions, putObject, type ObjectVersion } from '../objects/versions.js';
import { prepareStep } from '../step/register.js';
import { collect, print, printList, storeOption, withStore, type StoreOpts } from './common.js';
import { count, paint, shortHash, table } from './format.js';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.json': 'application/json',
  '.ndjson': 'application/x-ndjson',
  '.jsonl': 'application/x-ndjson',
  '.csv': 'text/csv',
  '.tsv': 'text/tab-separated-values',
  '.txt': 'text/plain',
  '.parquet': 'application/vnd.apache.parquet',
  '.xml': 'application/xml',
  '.pdf': 'application/pdf',
};

function parseJsonOption(name: string, text: string | undefined): JsonValue {
  if (text === undefined) return {};
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new ProvenantError('INPUT_INVALID', `${name} is not JSON: ${(err as Error).message}`, { context: { [name]: text } });
  }
}

function requireFile(path: string): string {
  const full = resolve(path);
  if (!existsSync(full)) throw new ProvenantError('INPUT_INVALID', `file ${full} does not exist`, { context: { file: full } });
  return full;
}

function versionLine(v: ObjectVersion): string[] {
  return [
    `v${v.ordinal}`,
    v.versionId,
    v.validFrom,
    shortHash(v.contentHash),
    count(v.size),
    v.executionId === null ? 'original' : `made by ${v.executionId}`,
    v.kept ? (v.pinned ? 'kept, pinned' : 'kept') : 'recomputed on read',
  ];
}

const VERSION_HEADER = ['VERSION', 'ID', 'VALID FROM', 'CONTENT', 'BYTES', 'ORIGIN', 'BYTES KEPT'];

/** Add the object commands to the program. */
export function addObjectCommands(program: Command): void {
  program
    .command('put')
    .description('ingest a file as a new version of an object (original data, always kept); .json files are stored as canonical JSON, others as raw bytes')
    .argument('<objectId>', 'e.g. customers/42')
    .argument('<file>')
    .addOption(storeOption())
    .option('--content-type <type>', 'media type (default: from the file extension)')
    .option('--raw', 'store a .json file as raw bytes rather than canonical JSON')
    .option('--json', 'machine-readable output')
    .action(async (objectId: string, file: string, opts: StoreOpts & { contentType?: string; raw?: boolean; json?: boolean }) => {
      const path = requireFile(file);
      const bytes = readFileSync(path);
      const ext = extname(path).toLowerCase();
      let data: Uint8Array | JsonValue = bytes;
      if (ext === '.json' && opts.raw !== true) {
        try {
          data = JSON.parse(bytes.toString('utf8')) as JsonValue;
        } catch (err) {
          throw new ProvenantError('INPUT_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, {
            hint: 'Fix the file, or pass --raw to store its bytes as they are.',
            context: { file: path },
          });
        }
      }
      const contentType = opts.contentType ?? CONTENT_TYPES[ext] ?? 'application/octet-stream';
      const v = await withStore(opts, true, (store) => putObject(store, objectId, data, { contentType }));
      print(opts.json === true, v, () => `${paint('green', 'stored')} ${v.objectId} v${v.ordinal}  version ${v.versionId}  ${v.contentHash}  (${count(v.size)} bytes, ${v.contentType})`);
    });

  program
    .command('objects')
    .description('list objects with their number of versions')
    .addOption(storeOption())
    .option('--prefix <p>', 'only ids starting with this')
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { prefix?: string; json?: boolean }) => {
      const list = await withStore(opts, false, (store) => store.listObjects(opts.prefix === undefined ? {} : { prefix: opts.prefix }));
      printList(opts.json === true, list, 'No objects yet. Ingest one with `provenant put <objectId> <file>`.', () =>
        table(['OBJECT', 'VERSIONS', 'LATEST'], list.map((o) => [o.objectId, count(o.versions), new Date(Math.floor(o.latestUs / 1000)).toISOString()])),
      );
    });

  program
    .command('versions')
    .description("list an object's versions: when each became current, its content hash, what made it, whether its bytes are kept")
    .argument('<objectId>')
    .addOption(storeOption())
    .option('--as-of <time>', 'only versions that existed then (ISO 8601 with offset, or epoch ms)')
    .option('--json', 'machine-readable output')
    .action(async (objectId: string, opts: StoreOpts & { asOf?: string; json?: boolean }) => {
      const list = await withStore(opts, false, (store) => listObjectVersions(store, objectId, opts.asOf === undefined ? {} : { asOf: opts.asOf }));
      if (list.length === 0 && opts.asOf === undefined) {
        throw new ProvenantError('NOT_FOUND', `no object ${objectId}`, { hint: 'List objects with `provenant objects`.', context: { objectId } });
      }
      printList(opts.json === true, list, `${objectId} had no version yet then.`, () => table(VERSION_HEADER, list.map(versionLine)));
    });

  program
    .command('register')
    .description('record the current code of a step (for on-read transforms and derivations); prints its version hash')
    .argument('<stepId>')
    .argument('<module>', 'TypeScript or JavaScript module; its default export is the step (see --export)')
    .addOption(storeOption())
    .option('--export <name>', 'the export that is the step', 'default')
    .option('--json', 'machine-readable output')
    .action(async (stepId: string, module: string, opts: StoreOpts & { export: string; json?: boolean }) => {
      const path = requireFile(module);
      const step = await withStore(opts, true, (store) => prepareStep(store, stepId, { module: path, export: opts.export }));
      print(opts.json === true, { stepId: step.stepId, versionHash: step.versionHash, manifest: step.manifest }, () => `${paint('green', 'registered')} ${step.stepId} @ ${step.versionHash}`);
    });

  program
    .command('derive')
    .description('make a new version of an object by running a step on versions of others (a recorded execution; joins take several --input)')
    .argument('<stepId>')
    .argument('<module>', 'the step module')
    .requiredOption('--input <ref>', 'an input: objectId (its current version) or objectId@versionId; repeatable, in order', collect, [])
    .requiredOption('--output <objectId>', 'the object the result becomes a new version of')
    .addOption(storeOption())
    .option('--export <name>', 'the export that is the step', 'default')
    .option('--params <json>', 'params of the step (JSON)')
    .option('--content-type <type>', 'media type of the result')
    .option('--json', 'machine-readable output')
    .action(async (stepId: string, module: string, opts: StoreOpts & { input: string[]; output: string; export: string; params?: string; contentType?: string; json?: boolean }) => {
      const path = requireFile(module);
      const params = parseJsonOption('--params', opts.params);
      const result = await withStore(opts, false, async (store) => {
        const run = await startRun(store, { name: `derive ${opts.output}`, context: { source: 'cli' }, options: { stepId, inputs: opts.input, output: opts.output } });
        try {
          const step = await run.step(stepId, { module: path, export: opts.export });
          return await deriveObject(run, step, { inputs: opts.input, output: opts.output, params, ...(opts.contentType === undefined ? {} : { contentType: opts.contentType }) });
        } finally {
          await run.finish();
        }
      });
      print(opts.json === true, result, () => `${paint('green', 'derived')} ${result.version.objectId} v${result.version.ordinal}  version ${result.version.versionId}  by execution ${result.executionId}`);
    });

  program
    .command('asof')
    .description('the object as it was at a time: read if its bytes are kept, else recomputed with the recorded code and verified')
    .argument('<objectId>')
    .argument('<time>', 'ISO 8601 with offset (2024-10-27T10:00:00Z) or epoch milliseconds; "now" for the current version')
    .addOption(storeOption())
    .option('--transform <stepId>', 'apply a registered step to the data as it is read (recorded as an execution)')
    .option('--params <json>', 'params of the transform (JSON)')
    .option('--out <file>', 'write the bytes to a file instead of standard output')
    .option('--json', 'print how it was obtained and the content (JSON, or base64 for bytes) as JSON')
    .action(async (objectId: string, time: string, opts: StoreOpts & { transform?: string; params?: string; out?: string; json?: boolean }) => {
      const at = time === 'now' ? Date.now() : time;
      const r = await withStore(opts, false, (store) =>
        getAsOf(store, objectId, at, {
          ...(opts.transform === undefined ? {} : { transform: opts.transform, params: parseJsonOption('--params', opts.params) }),
          context: { source: 'cli', principal: process.env.USER ?? 'unknown' },
        }),
      );
      const how = `${r.obtained === 'read' ? paint('green', 'read') : paint('yellow', 'recomputed')} ${r.objectId} v${r.version.ordinal} (version ${r.version.versionId}, current from ${r.version.validFrom})` +
        (r.obtained === 'recomputed' ? `: ${r.executionsRun} executions run, ${r.cacheHits} from cache` : '') +
        (r.transformExecutionId === undefined ? '' : `; transformed by execution ${r.transformExecutionId}`) +
        `  ${r.contentHash}`;
      if (opts.json === true) {
        const isJson = r.contentType === 'application/json';
        const { bytes, ...rest } = r;
        print(true, { ...rest, size: bytes.byteLength, content: isJson ? (JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown) : Buffer.from(bytes).toString('base64') }, () => '');
        return;
      }
      if (opts.out !== undefined) {
        writeFileSync(opts.out, r.bytes);
        process.stdout.write(`${how}\nwrote ${count(r.bytes.byteLength)} bytes to ${opts.out}\n`);
        return;
      }
      process.stderr.write(`${how}\n`);
      process.stdout.write(r.bytes);
      if (r.contentType === 'application/json' && process.stdout.isTTY === true) process.stdout.write('\n');
    });

  program
    .command('lineage')
    .description('ancestors (--up, default) or descendants (--down) of an object, object@version, value hash or execution, as a tree')
    .argument('<ref>', 'objectId, objectId@versionId, a version or execution id, or sha256:<hex>')
    .addOption(storeOption())
    .option('--up', 'what it was made from (default)')
    .option('--down', 'what was made from it')
    .option('--depth <n>', 'executions to walk through at most', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new ProvenantError('INPUT_INVALID', `--depth must be a whole number ≥ 0, not "${v}"`);
      return n;
    })
    .option('--as-of <time>', 'only what existed then')
    .option('--json', 'nodes and edges as JSON')
    .action(async (ref: string, opts: StoreOpts & { up?: boolean; down?: boolean; depth?: number; asOf?: string; json?: boolean }) => {
      if (opts.up === true && opts.down === true) throw new ProvenantError('INPUT_INVALID', 'give --up or --down, not both');
      const graph = await withStore(opts, false, (store) =>
        lineage(store, ref, {
          direction: opts.down === true ? 'down' : 'up',
          ...(opts.depth === undefined ? {} : { depth: opts.depth }),
          ...(opts.asOf === undefined ? {} : { asOf: opts.asOf }),
        }),
      );
      print(opts.json === true, graph, () => renderLineageTree(graph));
    });

  program
    .command('materialize')
    .description('pin a version (objectId@<time>, objectId@versionId, or objectId for the current one): its bytes are kept whatever the policy, stored again if collected')
    .argument('<ref>')
    .addOption(storeOption())
    .option('--unpin', 'remove the pin (policy decides again at the next gc)')
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: StoreOpts & { unpin?: boolean; json?: boolean }) => {
      const v = await withStore(opts, false, (store) => materialize(store, ref, { pinned: opts.unpin !== true }));
      print(opts.json === true, v, () => `${v.pinned ? paint('green', 'pinned') : 'unpinned'} ${v.objectId} v${v.ordinal} (version ${v.versionId}); bytes ${v.kept ? 'kept' : 'not kept'}`);
    });

  const policy = program.command('policy').description('materialization policies: which derived versions keep their bytes');
  policy
    .command('set')
    .description('set the policy of the store, or of one step with --step: all | none | every:<k> | cost[:<ms per KiB>]')
    .argument('<policy>')
    .addOption(storeOption())
    .option('--step <stepId>', 'only for this step\'s versions')
    .option('--json', 'machine-readable output')
    .action(async (text: string, opts: StoreOpts & { step?: string; json?: boolean }) => {
      const current = await withStore(opts, false, async (store) => {
        await setPolicy(store, text, opts.step === undefined ? {} : { step: opts.step });
        return listPolicies(store);
      });
      print(opts.json === true, current, () => `policy of ${opts.step === undefined ? 'the store' : `step ${opts.step}`} set to ${text}; run \`provenant gc\` to apply it`);
    });
  policy
    .command('show')
    .description('show the store policy and per-step policies')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      const current = await withStore(opts, false, (store) => listPolicies(store));
      const out = { store: formatPolicy(current.store), steps: Object.fromEntries(Object.entries(current.steps).map(([k, v]) => [k, formatPolicy(v)])) };
      print(opts.json === true, out, () => table(['SCOPE', 'POLICY'], [['store', out.store], ...Object.entries(out.steps).map(([k, v]) => [`step ${k}`, v])]));
    });

  program
    .command('gc')
    .description('delete the bytes of derived versions that policy no longer keeps (never originals or pinned ones); they stay obtainable by recomputation')
    .addOption(storeOption())
    .option('--dry-run', 'report what would be freed, delete nothing')
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { dryRun?: boolean; json?: boolean }) => {
      const r = await withStore(opts, false, (store) => gc(store, { dryRun: opts.dryRun === true }));
      print(opts.json === true, r, () =>
        `${r.dryRun ? 'would free' : paint('green', 'freed')} ${count(r.bytesFreed)} bytes: ${count(r.dropped)} of ${count(r.versions)} derived versions ${r.dryRun ? 'would be' : 'are now'} recomputed on read; ${count(r.keptByPolicy)} kept by policy or pins`,
      );
    });
}
