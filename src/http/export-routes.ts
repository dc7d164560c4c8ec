/**
 * `GET /export/{objectId}`: an object's lineage in an export format (PROV-JSON, PROV-O,
 * PROV-JSON-LD, OpenLineage, Cypher), as `provenant export --object` writes it. Needs
 * `export:<pattern>` for the object (else 404, as for a missing one) and for every object whose
 * versions the export would show: the versions the exported executions used or made. When some
 * are not covered the export is refused (403) and the answer counts them without naming them — an
 * export is a document to hand on, not a view to cut.
 */
import type { FastifyInstance } from 'fastify';
import { ProvenantError } from '../errors.js';
import { exportFormat, exportFormats, selectExecutions, type ExportScope } from '../export/index.js';
import type { ContentHash } from '../hash/canonical.js';
import { asOfMicros, parseTime } from '../objects/refs.js';
import { objectNotFound, problemResponse, TIME_DOC, validObjectId } from './object-routes.js';
import { HttpProblem } from './problem.js';
import { allow, type ServerParts } from './server.js';

const CONTENT_TYPES: Record<string, string> = {
  json: 'application/json',
  jsonld: 'application/ld+json',
  ttl: 'text/turtle; charset=utf-8',
  ndjson: 'application/x-ndjson',
  cypher: 'text/plain; charset=utf-8',
};

/** Add the export route. */
export function registerExportRoutes(app: FastifyInstance, parts: ServerParts): void {
  const { store } = parts;
  const names = exportFormats().map((f) => f.name);
  app.get<{ Params: { objectId: string }; Querystring: { format?: string; as_of?: string } }>(
    '/export/:objectId',
    {
      schema: {
        summary: "An object's lineage in an export format (PROV, OpenLineage, Cypher)",
        description:
          'The object id is one URL-encoded path segment. The executions in its lineage (both ways from its versions, up to `as_of`), with the versions they used and made. Needs `export:<pattern>` covering the object and every object the export shows; otherwise 403, counting the objects not covered.',
        params: { type: 'object', required: ['objectId'], properties: { objectId: { type: 'string', minLength: 1, maxLength: 2048 } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            format: { type: 'string', enum: names, default: 'prov-json' },
            as_of: { type: 'string', maxLength: 64, description: TIME_DOC },
          },
        },
        response: { 200: { description: 'The export document', type: 'string' }, 400: problemResponse, 401: problemResponse, 403: problemResponse, 404: problemResponse, 429: problemResponse },
      },
    },
    async (request, reply) => {
      const objectId = validObjectId(request.params.objectId);
      const format = exportFormat(request.query.format ?? 'prov-json');
      const asOfMs = request.query.as_of === undefined ? undefined : parseTime(request.query.as_of);
      if (allow(request, 'export', objectId) === undefined) throw objectNotFound(objectId);
      const scope: ExportScope = { objectId, ...(asOfMs === undefined ? {} : { asOfUs: asOfMicros(asOfMs) }) };
      const shown = new Set<string>([objectId]);
      let executions = 0;
      try {
        for await (const e of selectExecutions(store, scope)) {
          executions++;
          if (e.streamId !== null) shown.add(`stream ${e.streamId}`);
          const hashes = [...e.inputHashes, ...(e.outputHash === null ? [] : [e.outputHash])] as ContentHash[];
          for (const h of new Set(hashes)) for (const v of await store.findObjectVersions({ contentHash: h })) shown.add(v.objectId);
        }
      } catch (err) {
        if (err instanceof ProvenantError && err.code === 'NOT_FOUND') throw objectNotFound(objectId);
        throw err;
      }
      const uncovered = [...shown].filter((id) => (id.startsWith('stream ') ? allow(request, 'stream', id.slice(7)) : allow(request, 'export', id)) === undefined);
      if (uncovered.length > 0) {
        request.provenant.detail = { objectId, refused: 'export', uncovered: uncovered.length };
        throw new HttpProblem(403, 'FORBIDDEN', `the lineage of ${objectId} shows ${uncovered.length} object${uncovered.length === 1 ? '' : 's'} or stream${uncovered.length === 1 ? '' : 's'} your token may not export`, {
          hint: 'Ask for `export:<pattern>` grants covering every object in this lineage (see GET /lineage for what you may trace).',
          context: { objectId, uncovered: uncovered.length },
        });
      }
      const chunks: string[] = [];
      await format.export(store, scope, (text) => void chunks.push(text));
      request.provenant.detail = { objectId, format: format.name, executions };
      const file = `${objectId.replaceAll('/', '_')}.${format.extension}`;
      return reply
        .type(CONTENT_TYPES[format.extension] ?? 'text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="${file.replaceAll('"', '')}"`)
        .header('provenant-executions', String(executions))
        .send(chunks.join(''));
    },
  );
}
