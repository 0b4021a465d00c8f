/** c2v's one tar codec: header blocks, pax records, a streaming reader and the encoders. */
export * from './header.js';
export * from './pax.js';
export * from './reader.js';
export * from './writer.js';
