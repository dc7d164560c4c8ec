/**
 * Exports of the recorded history in standard formats. Importing this module registers the
 * built-in formats (prov-json, prov-o, prov-jsonld, openlineage, cypher, cypher-kuzu).
 */
import './prov.js';
import './openlineage.js';
import './cypher.js';

export { exportFormat, exportFormats, registerExportFormat, selectExecutions, type ExportFormat, type ExportScope } from './registry.js';
export { provJson, provJsonLd, provTurtle, PROVENANT_NS } from './prov.js';
export { openLineageEvents, OPENLINEAGE_NAMESPACE, OPENLINEAGE_PRODUCER, PROVENANT_FACETS_SCHEMA, type RunEvent } from './openlineage.js';
export { emitOpenLineage, lineageEndpoint, type EmitOptions } from './emit.js';
