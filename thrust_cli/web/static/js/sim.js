// The game's WebAssembly module (env core + policy forward pass, built by thrust_cli/web/wasm_build.py) behind a
// small class: instantiate, init, load a Thrust safetensors policy, act + step, and typed views of its buffers.
// Views are rebuilt whenever the module's memory grew (growth detaches the old ArrayBuffer).

const ACTIVATIONS = { tanh: 0, relu: 1, gelu: 2 };
const ARCHITECTURES = { mlp: 0, lstm: 1 };
export const MODES = { greedy: 0, sample: 1, random: 2 };

export class SimError extends Error {
  constructor(message) {
    super(message);
    this.name = "SimError";
  }
}

/** Fetch and instantiate a zero-import module; calls its `_initialize` once. */
export async function loadModule(url) {
  let result;
  try {
    if (WebAssembly.instantiateStreaming) {
      const response = await fetch(url);
      if (!response.ok) throw new SimError(`${url}: HTTP ${response.status}`);
      result = await WebAssembly.instantiateStreaming(response, {});
    } else {
      const response = await fetch(url);
      if (!response.ok) throw new SimError(`${url}: HTTP ${response.status}`);
      result = await WebAssembly.instantiate(await response.arrayBuffer(), {});
    }
  } catch (err) {
    if (err instanceof SimError) throw err;
    throw new SimError(`could not load ${url}: ${err.message}`);
  }
  const exports = result.instance.exports;
  if (exports._initialize) exports._initialize();
  return new Sim(exports);
}

export class Sim {
  constructor(exports) {
    this.x = exports;
    this.memory = exports.memory;
    this.agents = 0;
    this._buffer = null;
    this.hasPolicy = false;
  }

  /** (Re)build `agents` agents from `seed`; resets the module's episode statistics. */
  init(agents, seed) {
    if (!this.x.init(agents, seed >>> 0)) throw new SimError(`the game cannot run ${agents} agents`);
    this.agents = this.x.num_agents();
    this.obsSize = this.x.obs_size();
    this.numActions = this.x.num_actions();
    this.x.stats_reset();
    this._buffer = null;
  }

  /** Typed views into the module's memory (valid until its memory grows again). */
  views() {
    if (this._buffer !== this.memory.buffer) {
      const buf = (this._buffer = this.memory.buffer);
      const n = this.agents;
      this._stats = new Float64Array(buf, this.x.stats_ptr(), 8);
      this._actions = new Int32Array(buf, this.x.actions_ptr(), n);
      this._rewards = new Float32Array(buf, this.x.rewards_ptr(), n);
      this._render = null;
    }
    return this;
  }

  /** act(mode) then step() `steps` times. */
  run(steps, mode) {
    const { act, step } = this.x;
    for (let i = 0; i < steps; i++) {
      act(mode);
      step();
    }
  }

  /** {episodes, returnSum, lengthSum, agentSteps, meanReturn (last 100; null if none), window, best}. */
  stats() {
    const s = this.views()._stats;
    return {
      episodes: s[0],
      returnSum: s[1],
      lengthSum: s[2],
      agentSteps: s[3],
      meanReturn: s[5] > 0 && Number.isFinite(s[4]) ? s[4] : null,
      window: s[5],
      best: s[5] > 0 || s[0] > 0 ? s[6] : null,
    };
  }

  /** The render() floats of `agent` (a view: copy before the next call). */
  render(agent) {
    const count = this.x.render(agent);
    return new Float32Array(this.memory.buffer, this.x.render_ptr(), count);
  }

  /** Snake only: {width, height, pad, cells: Int8Array view of the padded grid}. */
  grid() {
    const width = this.x.grid_width();
    const height = this.x.grid_height();
    return {
      width,
      height,
      pad: this.x.grid_pad ? this.x.grid_pad() : 0,
      cells: new Int8Array(this.memory.buffer, this.x.grid_ptr(), width * height),
    };
  }

  /**
   * Load a parsed Thrust safetensors policy ({metadata, tensors} from parseSafetensors) into the forward pass.
   * @throws {SimError} an architecture or tensor the module does not accept, or sizes that do not fit the game
   */
  loadPolicy({ metadata, tensors }) {
    const arch = ARCHITECTURES[metadata.architecture];
    if (arch === undefined) {
      throw new SimError(`the model's architecture ${JSON.stringify(metadata.architecture)} is not supported (mlp, lstm)`);
    }
    const p = metadata.policy || {};
    if (p.num_actions !== undefined && p.num_actions !== this.x.num_actions()) {
      throw new SimError(`the model has ${p.num_actions} actions; this game has ${this.x.num_actions()}`);
    }
    const obsDim = p.obs_dim ?? (p.obs_shape ? p.obs_shape.reduce((a, b) => a * b, 1) : undefined);
    if (obsDim !== undefined && obsDim !== this.x.obs_size()) {
      throw new SimError(`the model takes ${obsDim} observations; this game has ${this.x.obs_size()}`);
    }
    const activation = arch === 0 ? ACTIVATIONS[p.activation] : 0;
    if (activation === undefined) throw new SimError(`activation ${JSON.stringify(p.activation)} is not supported`);
    const ok = this.x.policy_config(
      arch, p.hidden_size | 0, arch === 0 ? p.num_layers | 0 : 1, activation, p.shared ? 1 : 0, p.num_codes | 0,
    );
    if (!ok) throw new SimError(`the wasm policy rejected the model's config ${JSON.stringify(p)}`);
    this.hasPolicy = false;
    const encoder = new TextEncoder();
    for (const [name, tensor] of tensors) {
      const nameBuffer = new Uint8Array(this.memory.buffer, this.x.name_buffer(), 256);
      const { written } = encoder.encodeInto(name, nameBuffer.subarray(0, 255));
      nameBuffer[written] = 0;
      const ptr = this.x.policy_tensor(tensor.data.length);
      if (ptr === 0) {
        if (name.startsWith("critic_head.") || name.startsWith("dist.")) continue;
        throw new SimError(`the wasm policy does not accept tensor '${name}' [${tensor.shape}]`);
      }
      new Float32Array(this.memory.buffer, ptr, tensor.data.length).set(tensor.data);
    }
    if (!this.x.policy_ready()) throw new SimError("the model file lacks tensors the forward pass needs");
    this.x.policy_reset_state();
    this.hasPolicy = true;
    this._buffer = null;
  }

  resetPolicyState() {
    if (this.hasPolicy) this.x.policy_reset_state();
  }
}
