/** The pyvisor wire codec: see docs/PROTOCOL.md. */
export { encode, encodeFrame, encodeRequest, MAX_DEPTH, DEFAULT_MAX_FRAME_BYTES } from './encode.js';
export { decode, validate, MAX_FRAME_DEPTH } from './decode.js';
export { FrameReader, type FrameReaderOptions } from './frames.js';
