// A small reader for the safetensors files `thrust export --safetensors` writes.
//
// Format (https://github.com/huggingface/safetensors): an unsigned 64-bit little-endian header length n, then n
// bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {key: string}}, then
// the raw little-endian tensor bytes; offsets count from the end of the header. Thrust's metadata values are
// JSON strings (architecture, policy, tensors, ...), decoded here. Only F32 tensors are supported: the wasm
// forward pass takes float32.

const MAX_HEADER_BYTES = 16 * 1024 * 1024;

export class SafetensorsError extends Error {
  constructor(message) {
    super(message);
    this.name = "SafetensorsError";
  }
}

/**
 * Parse a safetensors file.
 * @param {ArrayBuffer} buffer the whole file
 * @returns {{metadata: Object<string, any>, tensors: Map<string, {dtype: string, shape: number[], data: Float32Array}>}}
 *   metadata values JSON-decoded (a value that is not JSON stays a string); tensors in file order
 * @throws {SafetensorsError} a file that is not safetensors, or a tensor that is not F32
 */
export function parseSafetensors(buffer) {
  if (!(buffer instanceof ArrayBuffer)) throw new SafetensorsError("not a safetensors file: expected bytes");
  if (buffer.byteLength < 8) throw new SafetensorsError(`not a safetensors file: only ${buffer.byteLength} bytes`);
  const headerLength = new DataView(buffer).getBigUint64(0, true);
  if (headerLength < 2n || headerLength > BigInt(Math.min(MAX_HEADER_BYTES, buffer.byteLength - 8))) {
    throw new SafetensorsError(
      `not a safetensors file: header length ${headerLength} does not fit a file of ${buffer.byteLength} bytes`,
    );
  }
  const n = Number(headerLength);
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(buffer, 8, n)));
  } catch (err) {
    throw new SafetensorsError(`not a safetensors file: the header is not UTF-8 JSON (${err.message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SafetensorsError("not a safetensors file: the header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataBytes = buffer.byteLength - dataStart;
  const metadata = {};
  const tensors = new Map();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      for (const [key, value] of Object.entries(entry || {})) metadata[key] = decodeValue(value);
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = entry || {};
    if (dtype !== "F32") {
      throw new SafetensorsError(`tensor '${name}' has dtype ${dtype}; only F32 is supported`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(Number.isInteger) ||
      offsets[0] < 0 || offsets[1] > dataBytes || offsets[1] - offsets[0] !== numel * 4
    ) {
      throw new SafetensorsError(
        `tensor '${name}': data_offsets ${JSON.stringify(offsets)} do not hold ${numel} float32 values ` +
          `inside the ${dataBytes} data bytes`,
      );
    }
    // slice() copies into a fresh, 4-byte aligned buffer (the header length need not keep tensors aligned)
    const data = new Float32Array(buffer.slice(dataStart + offsets[0], dataStart + offsets[1]));
    tensors.set(name, { dtype, shape, data });
  }
  if (tensors.size === 0) throw new SafetensorsError("the safetensors file holds no tensors");
  return { metadata, tensors };
}

function decodeValue(value) {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
