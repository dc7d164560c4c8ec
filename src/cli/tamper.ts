/**
 * Tamper-evidence commands (`keys create|show`, `proof`, `verify-proof`, `verify`) and `export`.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';
import { createSigningKey, keyId, loadSigningKey, parsePublicKey, signingKeyPath, type SignedTreeHead } from '../merkle/head.js';
import { proveConsistency, proveInclusion, verifyProofFile, type ProofFile } from '../merkle/proof.js';
import { verifyStore } from '../merkle/verify.js';
import { emitOpenLineage, exportFormat, exportFormats, lineageEndpoint, openLineageEvents, type ExportScope } from '../export/index.js';
import { PostgresStore } from '../store/postgres/postgres-store.js';
import type { Store } from '../store/store.js';
import { print, storeOption, withStore, type StoreOpts } from './common.js';
import { count, paint } from './format.js';

/** Where a store's signing key lives: the store folder (embedded) or the key folder of a PostgreSQL store. */
function keyHome(store: Store): string {
  return store instanceof PostgresStore ? store.keyHome : store.location;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ProvenantError('NOT_FOUND', `cannot read the ${what} ${path}: ${(err as Error).message}`, { context: { path } });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ProvenantError('INPUT_INVALID', `the ${what} ${path} is not JSON: ${(err as Error).message}`, { context: { path } });
  }
}

function readKey(path: string) {
  try {
    return parsePublicKey(readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof ProvenantError) throw new ProvenantError(err.code, `${path}: ${err.message}`, { ...(err.hint === undefined ? {} : { hint: err.hint }), context: { path } });
    throw new ProvenantError('NOT_FOUND', `cannot read the public key ${path}: ${(err as Error).message}`, { context: { path } });
  }
}

/** Add the tamper-evidence commands to the program. */
export function addTamperCommands(program: Command): void {
  const keys = program.command('keys').description("the store's Ed25519 key that signs tree heads");
  keys
    .command('create')
    .description('create the signing key if the store has none (a store makes one when first opened)')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      // An embedded store's key is made before opening it (opening a new store would make one itself).
      const embeddedCreated = /^postgres(ql)?:\/\//.test(opts.store) ? undefined : createSigningKey(opts.store);
      await withStore(opts, true, async (store) => {
        const home = keyHome(store);
        const created = embeddedCreated ?? createSigningKey(home);
        const key = loadSigningKey(home);
        if (key === undefined) throw new ProvenantError('NOT_FOUND', `no signing key at ${signingKeyPath(home)}`, {});
        const id = keyId(createPublicKey(key));
        print(opts.json === true, { created, keyId: id, path: signingKeyPath(home) }, () =>
          created ? `Created the signing key ${id}\n  ${signingKeyPath(home)} (mode 0600)` : `The store already has a signing key (kept): ${id}`,
        );
      });
    });
  keys
    .command('show')
    .description('show the signing key: its id and file; --public prints the public key (PEM, or JWK with --jwk) for third parties')
    .addOption(storeOption())
    .option('--public', 'print the public key only (PEM), to save and hand to verifiers')
    .option('--jwk', 'with --public: as a JSON Web Key')
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { public?: boolean; jwk?: boolean; json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const path = signingKeyPath(keyHome(store));
        const key = loadSigningKey(keyHome(store));
        if (key === undefined) {
          throw new ProvenantError('NOT_FOUND', `the store at ${store.location} has no signing key`, { hint: 'Run `provenant keys create`.', context: { path } });
        }
        const pub = createPublicKey(key);
        const pem = pub.export({ type: 'spki', format: 'pem' }).toString();
        const jwk = pub.export({ format: 'jwk' });
        if (opts.public === true && opts.json !== true) {
          process.stdout.write(opts.jwk === true ? `${JSON.stringify(jwk)}\n` : pem);
          return;
        }
        const mode = (statSync(path).mode & 0o777).toString(8).padStart(4, '0');
        print(opts.json === true, { keyId: keyId(pub), algorithm: 'Ed25519', path, mode, publicKeyPem: pem, publicKeyJwk: jwk }, () =>
          [`Signing key ${keyId(pub)} (Ed25519)`, `  private key  ${path} (mode ${mode})`, '', pem.trimEnd()].join('\n'),
        );
      });
    });

  program
    .command('proof')
    .description('an inclusion proof of an execution (or checkpoint) against the latest signed tree head; or --consistency <old> [new]')
    .argument('[recordId]', 'execution or checkpoint id')
    .option('--consistency <sizes...>', 'a consistency proof between two tree sizes (new: default the latest signed head)')
    .option('--out <file>', 'write the proof file there (default: print it)')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (recordId: string | undefined, opts: StoreOpts & { consistency?: string[]; out?: string; json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        let proof: ProofFile;
        if (opts.consistency !== undefined) {
          const [a, b, ...rest] = opts.consistency.map(Number);
          if (rest.length > 0 || a === undefined || !Number.isSafeInteger(a) || (b !== undefined && !Number.isSafeInteger(b))) {
            throw new ProvenantError('INPUT_INVALID', `--consistency takes one or two tree sizes, not ${opts.consistency.join(' ')}`, {
              hint: 'e.g. provenant proof --consistency 1000 2000',
            });
          }
          proof = await proveConsistency(store, a, b);
        } else {
          if (recordId === undefined) {
            throw new ProvenantError('INPUT_INVALID', 'give an execution or checkpoint id, or --consistency <old> [new]', { hint: 'provenant proof <executionId>' });
          }
          proof = await proveInclusion(store, recordId);
        }
        const text = `${JSON.stringify(proof, null, 2)}\n`;
        if (opts.out === undefined) {
          process.stdout.write(text);
          return;
        }
        writeFileSync(opts.out, text);
        const what =
          proof.type === 'inclusion'
            ? `${proof.record.type} ${proof.record.id}: leaf ${count(proof.leafIndex)} of the signed tree of ${count(proof.treeSize)}`
            : `tree ${count(proof.oldSize)} → ${count(proof.newSize)}`;
        print(opts.json === true, { out: opts.out, type: proof.type }, () => `Wrote the ${proof.type} proof (${what}) to ${opts.out ?? ''}`);
      });
    });

  program
    .command('verify-proof')
    .description('check a proof file offline, with the public key (and the record as you have it)')
    .argument('<proofFile>')
    .requiredOption('--key <file>', 'the public key (PEM or JWK) from `provenant keys show --public`')
    .option('--record <file>', 'the record (canonical JSON) to check; default: the one in the proof file')
    .option('--json', 'machine-readable output')
    .action((file: string, opts: { key: string; record?: string; json?: boolean }) => {
      const proof = readJson(file, 'proof file') as ProofFile;
      const record = opts.record === undefined ? undefined : (readJson(opts.record, 'record') as JsonValue);
      const check = verifyProofFile(proof, readKey(opts.key), record);
      print(opts.json === true, check, () => `${check.valid ? paint('green', 'valid') : paint('red', 'INVALID')}: ${check.reason}`);
      if (!check.valid) process.exitCode = 3;
    });

  program
    .command('verify')
    .description('check the whole store: every record against its hash, the Merkle tree, every signed head, every blob and code artifact')
    .option('--head <file>', 'a tree head kept outside the store (from --save-head): detects a store rolled back or truncated')
    .option('--key <file>', 'the public key heads must be signed with (default: the keys the store records)')
    .option('--save-head <file>', "save the store's latest signed head, to verify against later")
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { head?: string; key?: string; saveHead?: string; json?: boolean }) => {
      const head = opts.head === undefined ? undefined : (readJson(opts.head, 'tree head') as SignedTreeHead);
      const publicKey = opts.key === undefined ? undefined : readKey(opts.key);
      await withStore(opts, false, async (store) => {
        const t0 = performance.now();
        const report = await verifyStore(store, { ...(head === undefined ? {} : { head }), ...(publicKey === undefined ? {} : { publicKey }) });
        const seconds = (performance.now() - t0) / 1000;
        if (opts.saveHead !== undefined && report.latestHead !== null && report.intact) writeFileSync(opts.saveHead, `${JSON.stringify(report.latestHead, null, 2)}\n`);
        print(opts.json === true, report, () => {
          const lines = [
            `${report.intact ? paint('green', 'intact') : paint('red', 'TAMPERED')}: ${count(report.executions)} executions, ${count(report.checkpoints)} checkpoints, ` +
              `${count(report.heads)} signed heads, ${count(report.blobs)} blobs checked in ${seconds.toFixed(1)} s`,
            `  tree: ${count(report.treeSize)} leaves, root ${report.rootHash}`,
          ];
          if (head !== undefined) lines.push(`  against the given head of ${count(head.treeSize)} leaves`);
          for (const f of report.findings.slice(0, 50)) lines.push(`  ${paint('red', f.kind)}  ${f.message}`);
          if (report.findings.length > 50) lines.push(`  … and ${count(report.findings.length - 50)} more (--json lists all)`);
          if (opts.saveHead !== undefined) lines.push(report.intact && report.latestHead !== null ? `  saved the latest head to ${opts.saveHead}` : '  no head saved (store not intact, or no signed head yet)');
          return lines.join('\n');
        });
        if (!report.intact) process.exitCode = 3;
      });
    });
}

/** Add `provenant export`. */
export function addExportCommand(program: Command): void {
  program
    .command('export')
    .description(`export history in a standard format: ${exportFormats().map((f) => f.name).join(', ')}`)
    .requiredOption('--format <name>', `one of ${exportFormats().map((f) => f.name).join(', ')}`)
    .option('--stream <id>', 'only executions of this stream')
    .option('--from <offset>', 'with --stream: from this offset (inclusive)', (v) => parseWhole(v, '--from'))
    .option('--to <offset>', 'with --stream: to this offset (exclusive)', (v) => parseWhole(v, '--to'))
    .option('--run <runId>', "only this run's executions")
    .option('--object <objectId>', "only this object's lineage (the executions that made its versions, their ancestors and descendants)")
    .option('--as-of <time>', 'history as it stood then (ISO 8601): executions ended by that time')
    .option('--out <file>', 'write there instead of stdout')
    .option('--emit <url>', 'openlineage: post the events to this consumer (Marquez: http://host:5000, POST /api/v1/lineage)')
    .addOption(storeOption())
    .option('--json', 'machine-readable summary (with --out or --emit)')
    .action(async (opts: StoreOpts & { format: string; stream?: string; from?: number; to?: number; run?: string; object?: string; asOf?: string; out?: string; emit?: string; json?: boolean }) => {
      const format = exportFormat(opts.format);
      let asOfUs: number | undefined;
      if (opts.asOf !== undefined) {
        const ms = Date.parse(opts.asOf);
        if (Number.isNaN(ms)) throw new ProvenantError('INPUT_INVALID', `--as-of ${opts.asOf} is not a time`, { hint: 'Give an ISO 8601 time, e.g. 2026-03-01T00:00:00Z.' });
        if (ms > Date.now()) throw new ProvenantError('AS_OF_IN_FUTURE', `--as-of ${opts.asOf} is in the future`, { hint: 'Give a past time, or leave --as-of out for now.' });
        asOfUs = ms * 1000;
      }
      if (opts.emit !== undefined && format.name !== 'openlineage') {
        throw new ProvenantError('INPUT_INVALID', '--emit posts OpenLineage events: use it with --format openlineage', {});
      }
      const scope: ExportScope = {
        ...(opts.stream === undefined ? {} : { streamId: opts.stream }),
        ...(opts.from === undefined ? {} : { from: opts.from }),
        ...(opts.to === undefined ? {} : { to: opts.to }),
        ...(opts.run === undefined ? {} : { runId: opts.run }),
        ...(opts.object === undefined ? {} : { objectId: opts.object }),
        ...(asOfUs === undefined ? {} : { asOfUs }),
      };
      await withStore(opts, false, async (store) => {
        if (opts.emit !== undefined) {
          const events = await openLineageEvents(store, scope);
          const sent = await emitOpenLineage(opts.emit, events);
          print(opts.json === true, { sent, url: lineageEndpoint(opts.emit) }, () => `Posted ${count(sent)} OpenLineage events to ${lineageEndpoint(opts.emit ?? '')}`);
          return;
        }
        const chunks: string[] = [];
        await format.export(store, scope, (text) => {
          if (opts.out === undefined) process.stdout.write(text);
          else chunks.push(text);
        });
        if (opts.out !== undefined) {
          const text = chunks.join('');
          writeFileSync(opts.out, text);
          print(opts.json === true, { format: format.name, out: opts.out, bytes: Buffer.byteLength(text) }, () => `Wrote ${format.description} to ${opts.out ?? ''} (${count(Buffer.byteLength(text))} bytes)`);
        }
      });
    });
}

function parseWhole(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new ProvenantError('INPUT_INVALID', `${what} ${v} is not a whole number ≥ 0`, {});
  return n;
}
