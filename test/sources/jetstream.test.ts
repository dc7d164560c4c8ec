/**
 * NATS JetStream as a record source, against a real server: real records published and read back
 * with offsets = stream sequences; ranges; malformed messages; deleted messages and subject
 * filters; following a live stream (idle ticks, abort); retention limits that discarded input;
 * a missing stream and an unreachable server; and throughput over 100,000 messages.
 *
 * Skipped (with a warning) when no NATS server answers, except in CI where that fails.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ProvenantError } from '../../src/errors.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { readRecords, valuesOf } from '../../src/sources/files.js';
import { openJetStreamSource, publishRecords, type JetStreamSource } from '../../src/sources/jetstream.js';
import { isIdleTick, type IdleTick, type SourceRecord } from '../../src/sources/source.js';
import { describeWithService, NATS, natsAvailable } from '../helpers/services.js';
import { rejection } from '../helpers/rejection.js';

const natsUp = await natsAvailable();
const servers = NATS.url;

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

function recordsOnly(items: readonly (SourceRecord | IdleTick)[]): SourceRecord[] {
  return items.filter((i): i is SourceRecord => !isIdleTick(i));
}

function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

describeWithService(NATS, natsUp, 'JetStream record source', () => {
  let admin: NatsConnection;
  let jsm: JetStreamManager;
  let flights: unknown[];
  const made: string[] = [];
  const sources: JetStreamSource[] = [];
  let counter = 0;

  /** A stream name no other test (or run) uses; deleted after the file. */
  function streamName(label: string): string {
    const name = `PROVENANT_TEST_${label}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
    made.push(name);
    return name;
  }

  async function open(stream: string, subject?: string): Promise<JetStreamSource> {
    const source = await openJetStreamSource(subject === undefined ? { servers, stream } : { servers, stream, subject });
    sources.push(source);
    return source;
  }

  beforeAll(async () => {
    admin = await connect({ servers });
    jsm = await jetstreamManager(admin);
    flights = await collect(valuesOf(readRecords(vegaDatasetPath('flights-20k.json'), { limit: 2000 })));
  });

  afterAll(async () => {
    for (const source of sources) await source.close();
    for (const name of made) await jsm.streams.delete(name).catch(() => undefined);
    await admin?.close();
  });

  it('publishes real records and reads them back with offsets = stream sequences', async () => {
    const stream = streamName('FLIGHTS');
    const progress: number[] = [];
    const published = await publishRecords({ servers, stream, create: true }, flights, { onProgress: (n) => progress.push(n) });
    expect(published).toEqual({ first: 1, next: 2001, published: 2000 });
    expect(progress.at(-1)).toBe(2000);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    const socketsBefore = openSockets();
    const source = await openJetStreamSource({ servers, stream });
    expect(source.streamId).toBe(`jetstream:${stream}`);
    expect(source.spec).toEqual({ kind: 'jetstream', servers, stream });
    expect(source.mayForget).toBe(true);
    expect(await source.bounds()).toEqual({ firstSeq: 1, lastSeq: 2000, messages: 2000 });

    const records = recordsOnly(await collect(source.read()));
    expect(records.map((r) => r.offset)).toEqual(flights.map((_, i) => i + 1));
    expect(records.map((r) => r.value)).toEqual(flights);
    expect(records.some((r) => r.malformed !== undefined)).toBe(false);

    // Publishing again appends after what is there.
    expect(await publishRecords({ servers, stream }, flights.slice(0, 3))).toEqual({ first: 2001, next: 2004, published: 3 });
    const appended = recordsOnly(await collect(source.read({ from: 2000 })));
    expect(appended.map((r) => r.offset)).toEqual([2000, 2001, 2002, 2003]);
    expect(appended.map((r) => r.value)).toEqual([flights[1999], ...flights.slice(0, 3)]);

    // Closing releases the connection: nothing keeps the process alive.
    await source.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(openSockets()).toBeLessThanOrEqual(socketsBefore);
    expect((await rejection(collect(source.read()))) as ProvenantError).toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
  });

  it('reads a middle range [from, to), and to past the end stops at the end', async () => {
    const stream = streamName('RANGE');
    await publishRecords({ servers, stream, create: true }, flights);
    const source = await open(stream);
    const middle = recordsOnly(await collect(source.read({ from: 500, to: 750 })));
    expect(middle.map((r) => r.offset)).toEqual(Array.from({ length: 250 }, (_, i) => 500 + i));
    expect(middle.map((r) => r.value)).toEqual(flights.slice(499, 749));

    const tail = recordsOnly(await collect(source.read({ from: 1995, to: 5000 })));
    expect(tail.map((r) => r.offset)).toEqual([1995, 1996, 1997, 1998, 1999, 2000]);
    expect(recordsOnly(await collect(source.read({ from: 2001 })))).toEqual([]);
    expect(recordsOnly(await collect(source.read({ from: 7, to: 7 })))).toEqual([]);

    // Stopping early (break) removes the read's consumer from the server.
    let taken = 0;
    for await (const item of source.read({ from: 100 })) {
      if (!isIdleTick(item)) taken++;
      if (taken === 5) break;
    }
    expect(taken).toBe(5);
    expect((await jsm.streams.info(stream)).state.consumer_count).toBe(0);

    const backwards = (await rejection(collect(source.read({ from: 10, to: 5 })))) as ProvenantError;
    expect(backwards.code).toBe('INPUT_INVALID');
    const beyond = (await rejection(collect(source.read({ from: 2500 })))) as ProvenantError;
    expect(beyond.code).toBe('SOURCE_UNAVAILABLE');
    expect(beyond.message).toContain('2500');
  });

  it('a message that is not JSON becomes a malformed record at its sequence', async () => {
    const stream = streamName('MALFORMED');
    await publishRecords({ servers, stream, create: true }, [{ a: 1 }, 'two']);
    await admin.request(stream, 'not json {', { timeout: 5000 }); // sequence 3, straight through NATS
    await admin.request(stream, '', { timeout: 5000 }); // sequence 4: empty
    expect(await publishRecords({ servers, stream }, [[5]])).toEqual({ first: 5, next: 6, published: 1 });

    const source = await open(stream);
    const records = recordsOnly(await collect(source.read()));
    expect(records.map((r) => r.offset)).toEqual([1, 2, 3, 4, 5]);
    expect(records[0]).toEqual({ offset: 1, value: { a: 1 } });
    expect(records[1]).toEqual({ offset: 2, value: 'two' });
    expect(records[2]).toMatchObject({ offset: 3, value: 'not json {', malformed: { format: 'jetstream' } });
    expect(records[2]?.malformed?.reason).toMatch(/^not valid JSON: /);
    expect(records[3]).toMatchObject({ offset: 4, value: '', malformed: { format: 'jetstream' } });
    expect(records[4]).toEqual({ offset: 5, value: [5] });
  });

  it('skips deleted messages, and a subject filter reads only its subject', async () => {
    const stream = streamName('SUBJECTS');
    await jsm.streams.add({ name: stream, subjects: [`${stream}.*`] });
    // Sequences 1..6 alternate between .a and .b.
    for (let i = 1; i <= 6; i++) await publishRecords({ servers, stream, subject: `${stream}.${i % 2 === 1 ? 'a' : 'b'}` }, [{ i }]);
    await jsm.streams.deleteMessage(stream, 3);

    const all = await open(stream);
    const records = recordsOnly(await collect(all.read()));
    expect(records.map((r) => r.offset)).toEqual([1, 2, 4, 5, 6]);
    expect(records.map((r) => r.value)).toEqual([{ i: 1 }, { i: 2 }, { i: 4 }, { i: 5 }, { i: 6 }]);
    expect(recordsOnly(await collect(all.read({ from: 3, to: 5 }))).map((r) => r.offset)).toEqual([4]);

    const onlyA = await open(stream, `${stream}.a`);
    expect(onlyA.streamId).toBe(`jetstream:${stream}/${stream}.a`);
    expect(onlyA.spec).toEqual({ kind: 'jetstream', servers, stream, subject: `${stream}.a` });
    const a = recordsOnly(await collect(onlyA.read()));
    expect(a.map((r) => r.offset)).toEqual([1, 5]);
    expect(recordsOnly(await collect(onlyA.read({ from: 2, to: 5 })))).toEqual([]);

    // Publishing needs a subject the stream captures when it has no single literal one.
    expect(((await rejection(publishRecords({ servers, stream }, [1]))) as ProvenantError).code).toBe('INPUT_INVALID');
    expect(((await rejection(publishRecords({ servers, stream, subject: 'elsewhere' }, [1]))) as ProvenantError).code).toBe('INPUT_INVALID');
  });

  it('follow: idle ticks while nothing arrives, then a record published later, until aborted', async () => {
    const stream = streamName('FOLLOW');
    await publishRecords({ servers, stream, create: true }, [{ n: 1 }]);
    const source = await open(stream);
    const controller = new AbortController();
    const seen: (SourceRecord | IdleTick)[] = [];
    let publishedLater = false;
    const started = Date.now();
    for await (const item of source.read({ follow: true, idleMs: 100, signal: controller.signal })) {
      seen.push(item);
      if (isIdleTick(item) && seen.filter(isIdleTick).length >= 3 && !publishedLater) {
        publishedLater = true;
        expect(await publishRecords({ servers, stream }, [{ n: 2 }])).toMatchObject({ first: 2, next: 3 });
      }
      if (!isIdleTick(item) && item.offset === 2) controller.abort();
      if (Date.now() - started > 20_000) throw new Error('follow did not deliver the later record');
    }
    const kinds = seen.map((i) => (isIdleTick(i) ? 'idle' : i.offset));
    expect(kinds[0]).toBe(1);
    expect(kinds.slice(1, 4)).toEqual(['idle', 'idle', 'idle']);
    expect(kinds.at(-1)).toBe(2);
    expect(recordsOnly(seen).map((r) => r.value)).toEqual([{ n: 1 }, { n: 2 }]);

    // Aborting while waiting ends the read promptly, ticks and all.
    const waiting = new AbortController();
    setTimeout(() => waiting.abort(), 300);
    const t0 = Date.now();
    const ticks = await collect(source.read({ from: 3, follow: true, idleMs: 50, signal: waiting.signal }));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    expect(ticks.every(isIdleTick)).toBe(true);
  });

  it('retention: a sequence discarded by max_msgs is SOURCE_UNAVAILABLE, naming the first available one', async () => {
    const stream = streamName('LIMITS');
    await jsm.streams.add({ name: stream, subjects: [stream], max_msgs: 10 });
    expect(await publishRecords({ servers, stream }, flights.slice(0, 25))).toEqual({ first: 1, next: 26, published: 25 });
    const source = await open(stream);
    expect(await source.bounds()).toMatchObject({ firstSeq: 16, lastSeq: 25, messages: 10 });

    const err = (await rejection(collect(source.read({ from: 1 })))) as ProvenantError;
    expect(err).toBeInstanceOf(ProvenantError);
    expect(err.code).toBe('SOURCE_UNAVAILABLE');
    expect(err.message).toContain(stream);
    expect(err.message).toContain('sequence 1');
    expect(err.message).toContain('16');
    expect(err.hint).toMatch(/checkpoint/);
    expect(err.context).toMatchObject({ stream, asked: 1, firstAvailable: 16 });
    expect(((await rejection(collect(source.read({ from: 15, follow: true })))) as ProvenantError).code).toBe('SOURCE_UNAVAILABLE');

    // What is still there reads as usual, from its first sequence.
    const kept = recordsOnly(await collect(source.read()));
    expect(kept.map((r) => r.offset)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(kept.map((r) => r.value)).toEqual(flights.slice(15, 25));
  });

  it('a stream that does not exist is NOT_FOUND, naming it and the server', async () => {
    const stream = streamName('MISSING');
    const err = (await rejection(openJetStreamSource({ servers, stream }))) as ProvenantError;
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain(stream);
    expect(err.message).toContain(servers);
    const pub = (await rejection(publishRecords({ servers, stream }, [1]))) as ProvenantError;
    expect(pub.code).toBe('NOT_FOUND');
    expect(pub.hint).toMatch(/--create/);
  });

  it('a value that is not JSON stops publishing with INPUT_INVALID after the records before it', async () => {
    const stream = streamName('BADVALUE');
    const err = (await rejection(publishRecords({ servers, stream, create: true }, [1, 2, { f: Number.NaN }, 4]))) as ProvenantError;
    expect(err.code).toBe('INPUT_INVALID');
    expect(err.message).toContain('record 2');
    expect(err.context).toMatchObject({ record: 2, published: 2, first: 1, next: 3 });
    const source = await open(stream);
    expect(recordsOnly(await collect(source.read())).map((r) => r.value)).toEqual([1, 2]);
  });

  it('reads and publishes 100,000 messages in seconds', async () => {
    const stream = streamName('BULK');
    const n = 100_000;
    const values = function* (): Generator<unknown> {
      for (let i = 0; i < n; i++) yield { i, origin: 'SAN', destination: 'SMF', delay: i % 90 };
    };
    let t = performance.now();
    expect(await publishRecords({ servers, stream, create: true }, values())).toEqual({ first: 1, next: n + 1, published: n });
    const publishMs = performance.now() - t;

    const source = await open(stream);
    t = performance.now();
    let count = 0;
    let last = 0;
    for await (const item of source.read()) {
      if (isIdleTick(item)) continue;
      if (item.offset !== last + 1) throw new Error(`offset ${item.offset} after ${last}`);
      last = item.offset;
      count++;
    }
    const readMs = performance.now() - t;
    expect(count).toBe(n);
    console.log(
      `JetStream: published ${n} in ${(publishMs / 1000).toFixed(2)} s (${Math.round(n / (publishMs / 1000))}/s), ` +
        `read in ${(readMs / 1000).toFixed(2)} s (${Math.round(n / (readMs / 1000))}/s)`,
    );
    expect(publishMs).toBeLessThan(30_000);
    expect(readMs).toBeLessThan(30_000);
  });
});

// Runs without a server: nothing listens on port 1.
it('an unreachable NATS server is SOURCE_UNAVAILABLE within seconds, with a hint', async () => {
  const t0 = Date.now();
  const err = (await rejection(openJetStreamSource({ servers: 'nats://127.0.0.1:1', stream: 'ORDERS' }))) as ProvenantError;
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(err.code).toBe('SOURCE_UNAVAILABLE');
  expect(err.message).toContain('nats://127.0.0.1:1');
  expect(err.hint).toMatch(/--nats/);
  const pub = (await rejection(publishRecords({ servers: 'nats://127.0.0.1:1', stream: 'ORDERS', create: true }, [1]))) as ProvenantError;
  expect(pub.code).toBe('SOURCE_UNAVAILABLE');
});
