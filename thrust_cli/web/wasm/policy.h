/* The forward pass of Thrust's exported policies (thrust_cli/learn/policies.py), in C for the browser demo's wasm
 * modules: MLPPolicy (stacked or shared trunk, tanh / relu / gelu) and LSTMPolicy (one-hot or linear encoder, one
 * LSTM layer), each with its categorical actor head. The critic is not evaluated.
 *
 * The host names each tensor of the safetensors export (the policy's state_dict, row-major) and writes its floats
 * where policy_tensor_for() points; policy_prepare() then copies every weight matrix into an input-major layout
 * [in][out], so that each layer is a sequence of axpy loops over the output units (contiguous, no reduction: the
 * compiler vectorizes them with -msimd128 without reassociating anything). Each output accumulates its products in
 * the natural order of the inputs, then adds its bias, in float32, as the torch reference does up to rounding.
 *
 *   MLP, stacked (shared 0): trunk.weights.k [2, in, hidden] (copy 0 is the actor's, used as is), trunk.biases.k
 *       [2, 1, hidden]; shared (shared 1): trunk.{2k}.weight [hidden, in], trunk.{2k}.bias [hidden]; then
 *       actor_head.weight [A, hidden] (or [A, obs] with 0 layers), actor_head.bias [A].
 *       h = act(h @ W + b) per layer (MLPPolicy feeds obs.float(), so Snake's int8 codes become floats).
 *   LSTM: x = one_hot(obs, num_codes) flattened (index p * num_codes + code of cell p) or obs as floats;
 *       e = relu(encoder.0.weight @ x + encoder.0.bias); gates = (W_ih e + b_ih) + (W_hh h + b_hh), blocks i, f,
 *       g, o; c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c'); logits = actor_head(h').
 * critic_head.* are accepted (into scratch) and ignored; other names (dist.*) are unknown.
 *
 * Allocation happens in policy_configure() and policy_prepare() only; the per-agent forward pass allocates nothing.
 */
#ifndef THRUST_WEB_POLICY_H
#define THRUST_WEB_POLICY_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_MLP 0
#define POLICY_LSTM 1
#define POLICY_TANH 0
#define POLICY_RELU 1
#define POLICY_GELU 2
#define POLICY_MAX_LAYERS 8
#define POLICY_MAX_HIDDEN 1024
#define POLICY_MAX_CODES 256
#define POLICY_MAX_TENSORS (2 * POLICY_MAX_LAYERS + 8)
#define POLICY_NAME_BYTES 256
#define POLICY_BLOCK 8 /* agents per forward block: each weight row is read once per block */

typedef struct PolicyTensor {
    char name[32];
    int32_t numel;
    int32_t required; /* 0 for critic_head.*: accepted, never read */
    int32_t given;
    float* data; /* numel floats, row-major as in the export */
} PolicyTensor;

typedef struct Policy {
    int32_t configured, arch, hidden, num_layers, activation, shared, num_codes;
    int32_t obs_size, num_actions, in_dim, out_dim; /* in_dim: encoder / first layer input; out_dim: head input */
    int32_t num_tensors;
    PolicyTensor tensors[POLICY_MAX_TENSORS];
    int32_t dirty; /* a tensor was handed out since the last policy_prepare() */
    /* prepared, input-major: layer k maps layer_in[k] inputs to hidden outputs */
    float* w[POLICY_MAX_LAYERS];
    const float* b[POLICY_MAX_LAYERS];
    int32_t layer_in[POLICY_MAX_LAYERS];
    float* head_w; /* [out_dim][A] */
    const float* head_b;
    float* enc_w; /* LSTM: [in_dim][H] */
    const float* enc_b;
    float* ih_w; /* [H][4H] */
    float* hh_w; /* [H][4H] */
    const float* ih_b;
    const float* hh_b;
    float* scratch; /* per block: x [obs], two [max(H, obs)] vectors, two [4H] gate vectors */
    /* LSTM state of each agent */
    float* state_h; /* [state_n][H] */
    float* state_c;
    int32_t state_n;
} Policy;

static inline void policy_free(Policy* p) {
    for (int32_t t = 0; t < p->num_tensors; t++) {
        free(p->tensors[t].data);
    }
    for (int32_t k = 0; k < POLICY_MAX_LAYERS; k++) {
        free(p->w[k]);
    }
    free(p->head_w);
    free(p->enc_w);
    free(p->ih_w);
    free(p->hh_w);
    free(p->scratch);
    free(p->state_h);
    free(p->state_c);
    memset(p, 0, sizeof(*p));
}

/* Declare tensor `name` with `numel` floats; 0 when allocation fails. */
static inline int policy_add_tensor(Policy* p, const char* name, int32_t numel, int32_t required) {
    PolicyTensor* t = &p->tensors[p->num_tensors++];
    size_t len = strlen(name);
    if (len >= sizeof(t->name)) {
        len = sizeof(t->name) - 1;
    }
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    t->numel = numel;
    t->required = required;
    t->given = 0;
    t->data = (float*)calloc((size_t)numel, sizeof(float));
    return t->data != NULL;
}

static inline const PolicyTensor* policy_find(const Policy* p, const char* name) {
    for (int32_t t = 0; t < p->num_tensors; t++) {
        if (strcmp(p->tensors[t].name, name) == 0) {
            return &p->tensors[t];
        }
    }
    return NULL;
}

/* "prefix" + decimal k + "suffix" into out (k < 100). */
static inline void policy_name(char* out, const char* prefix, int32_t k, const char* suffix) {
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    if (k >= 10) {
        out[n++] = (char)('0' + k / 10);
    }
    out[n++] = (char)('0' + k % 10);
    size_t m = strlen(suffix);
    memcpy(out + n, suffix, m + 1);
}

/* (Re)configure for a game with `obs_size` inputs (`int_obs`: integer codes) and `num_actions` logits. Frees any
 * previous policy. 1 ok, 0 bad config (nothing configured then). */
static inline int policy_configure(Policy* p, int arch, int hidden, int num_layers, int activation, int shared,
                                   int num_codes, int32_t obs_size, int32_t num_actions, int int_obs) {
    policy_free(p);
    if (hidden < 1 || hidden > POLICY_MAX_HIDDEN) {
        return 0;
    }
    if (arch == POLICY_MLP) {
        if (num_layers < 0 || num_layers > POLICY_MAX_LAYERS || activation < POLICY_TANH
            || activation > POLICY_GELU || (shared != 0 && shared != 1) || num_codes != 0) {
            return 0;
        }
    } else if (arch == POLICY_LSTM) {
        if (num_codes < 0 || num_codes > POLICY_MAX_CODES || (num_codes > 0 && !int_obs)) {
            return 0;
        }
        num_layers = 1;
        activation = POLICY_RELU;
        shared = 0;
    } else {
        return 0;
    }
    p->arch = arch;
    p->hidden = hidden;
    p->num_layers = num_layers;
    p->activation = activation;
    p->shared = shared;
    p->num_codes = num_codes;
    p->obs_size = obs_size;
    p->num_actions = num_actions;
    p->in_dim = arch == POLICY_LSTM && num_codes > 0 ? obs_size * num_codes : obs_size;
    p->out_dim = arch == POLICY_MLP && num_layers == 0 ? obs_size : hidden;
    char name[64];
    int ok = 1;
    if (arch == POLICY_MLP) {
        for (int32_t k = 0; k < num_layers; k++) {
            int32_t in = k == 0 ? obs_size : hidden;
            if (shared) {
                policy_name(name, "trunk.", 2 * k, ".weight");
                ok &= policy_add_tensor(p, name, hidden * in, 1);
                policy_name(name, "trunk.", 2 * k, ".bias");
                ok &= policy_add_tensor(p, name, hidden, 1);
            } else {
                policy_name(name, "trunk.weights.", k, "");
                ok &= policy_add_tensor(p, name, 2 * in * hidden, 1);
                policy_name(name, "trunk.biases.", k, "");
                ok &= policy_add_tensor(p, name, 2 * hidden, 1);
            }
        }
    } else {
        ok &= policy_add_tensor(p, "encoder.0.weight", hidden * p->in_dim, 1);
        ok &= policy_add_tensor(p, "encoder.0.bias", hidden, 1);
        ok &= policy_add_tensor(p, "lstm.weight_ih_l0", 4 * hidden * hidden, 1);
        ok &= policy_add_tensor(p, "lstm.weight_hh_l0", 4 * hidden * hidden, 1);
        ok &= policy_add_tensor(p, "lstm.bias_ih_l0", 4 * hidden, 1);
        ok &= policy_add_tensor(p, "lstm.bias_hh_l0", 4 * hidden, 1);
    }
    ok &= policy_add_tensor(p, "actor_head.weight", num_actions * p->out_dim, 1);
    ok &= policy_add_tensor(p, "actor_head.bias", num_actions, 1);
    ok &= policy_add_tensor(p, "critic_head.weight", p->out_dim, 0);
    ok &= policy_add_tensor(p, "critic_head.bias", 1, 0);
    int32_t width = p->out_dim > hidden ? p->out_dim : hidden;
    p->scratch = (float*)malloc(sizeof(float) * POLICY_BLOCK * (size_t)(obs_size + 2 * width + 8 * hidden));
    if (!ok || p->scratch == NULL) {
        policy_free(p);
        return 0;
    }
    p->configured = 1;
    p->dirty = 1;
    return 1;
}

/* Where the host writes tensor `name`'s `numel` floats, or NULL for an unknown name or a wrong numel. */
static inline float* policy_tensor_for(Policy* p, const char* name, int32_t numel) {
    for (int32_t t = 0; t < p->num_tensors; t++) {
        PolicyTensor* tensor = &p->tensors[t];
        if (strcmp(tensor->name, name) == 0) {
            if (tensor->numel != numel) {
                return NULL;
            }
            tensor->given = 1;
            p->dirty = 1;
            return tensor->data;
        }
    }
    return NULL;
}

static inline int policy_is_ready(const Policy* p) {
    if (!p->configured) {
        return 0;
    }
    for (int32_t t = 0; t < p->num_tensors; t++) {
        if (p->tensors[t].required && !p->tensors[t].given) {
            return 0;
        }
    }
    return 1;
}

/* dst[c][r] = src[r][c] for src [rows][cols] (allocates dst when *dst is NULL); 0 when allocation fails. */
static inline int policy_transpose(float** dst, const float* src, int32_t rows, int32_t cols) {
    if (*dst == NULL) {
        *dst = (float*)malloc(sizeof(float) * (size_t)rows * (size_t)cols);
        if (*dst == NULL) {
            return 0;
        }
    }
    float* out = *dst;
    for (int32_t r = 0; r < rows; r++) {
        for (int32_t c = 0; c < cols; c++) {
            out[(size_t)c * (size_t)rows + (size_t)r] = src[(size_t)r * (size_t)cols + (size_t)c];
        }
    }
    return 1;
}

static inline float* policy_data(const Policy* p, const char* name) {
    const PolicyTensor* t = policy_find(p, name);
    return t != NULL ? t->data : NULL;
}

/* Build the input-major copies of the weights the host wrote; 0 when allocation fails. */
static inline int policy_prepare(Policy* p) {
    const int32_t H = p->hidden, A = p->num_actions;
    char name[64];
    int ok = 1;
    if (p->arch == POLICY_MLP) {
        for (int32_t k = 0; k < p->num_layers; k++) {
            int32_t in = k == 0 ? p->obs_size : H;
            p->layer_in[k] = in;
            if (p->shared) {
                policy_name(name, "trunk.", 2 * k, ".weight");
                ok &= policy_transpose(&p->w[k], policy_data(p, name), H, in);
                policy_name(name, "trunk.", 2 * k, ".bias");
                p->b[k] = policy_data(p, name);
            } else {
                /* copy 0 (the actor's) of [2, in, H] is already input-major */
                policy_name(name, "trunk.weights.", k, "");
                const float* src = policy_data(p, name);
                if (p->w[k] == NULL) {
                    p->w[k] = (float*)malloc(sizeof(float) * (size_t)in * (size_t)H);
                }
                if (p->w[k] != NULL) {
                    memcpy(p->w[k], src, sizeof(float) * (size_t)in * (size_t)H);
                } else {
                    ok = 0;
                }
                policy_name(name, "trunk.biases.", k, "");
                p->b[k] = policy_data(p, name);
            }
        }
    } else {
        ok &= policy_transpose(&p->enc_w, policy_data(p, "encoder.0.weight"), H, p->in_dim);
        p->enc_b = policy_data(p, "encoder.0.bias");
        ok &= policy_transpose(&p->ih_w, policy_data(p, "lstm.weight_ih_l0"), 4 * H, H);
        ok &= policy_transpose(&p->hh_w, policy_data(p, "lstm.weight_hh_l0"), 4 * H, H);
        p->ih_b = policy_data(p, "lstm.bias_ih_l0");
        p->hh_b = policy_data(p, "lstm.bias_hh_l0");
    }
    ok &= policy_transpose(&p->head_w, policy_data(p, "actor_head.weight"), A, p->out_dim);
    p->head_b = policy_data(p, "actor_head.bias");
    if (ok) {
        p->dirty = 0;
    }
    return ok;
}

/* (Re)allocate the LSTM state for n agents, zeroed; 0 when allocation fails. */
static inline int policy_state_alloc(Policy* p, int32_t n) {
    free(p->state_h);
    free(p->state_c);
    p->state_n = 0;
    if (p->arch != POLICY_LSTM || !p->configured) {
        p->state_h = p->state_c = NULL;
        return 1;
    }
    p->state_h = (float*)calloc((size_t)n * (size_t)p->hidden, sizeof(float));
    p->state_c = (float*)calloc((size_t)n * (size_t)p->hidden, sizeof(float));
    if (p->state_h == NULL || p->state_c == NULL) {
        free(p->state_h);
        free(p->state_c);
        p->state_h = p->state_c = NULL;
        return 0;
    }
    p->state_n = n;
    return 1;
}

/* y[b][0..out) = x[b][0..in) @ w [in][out] + bias for the `count` agents b of a block (rows `ystride` / `xstride`
 * floats apart): each output accumulates its products in input order, then adds the bias. Each weight row is read
 * once per block, not once per agent (an LSTM's weights outgrow the cache). Zero inputs are skipped (adding 0 * w
 * changes no sum but the sign of an exact zero). */
static inline void policy_linear(float* restrict y, int32_t ystride, const float* restrict x, int32_t xstride,
                                 const float* restrict w, const float* restrict bias, int32_t in, int32_t out,
                                 int32_t count) {
    for (int32_t b = 0; b < count; b++) {
        float* restrict yb = y + (size_t)b * (size_t)ystride;
        for (int32_t j = 0; j < out; j++) {
            yb[j] = 0.0f;
        }
    }
    for (int32_t i = 0; i < in; i++) {
        const float* restrict row = w + (size_t)i * (size_t)out;
        for (int32_t b = 0; b < count; b++) {
            const float xi = x[(size_t)b * (size_t)xstride + (size_t)i];
            if (xi == 0.0f) {
                continue;
            }
            float* restrict yb = y + (size_t)b * (size_t)ystride;
            for (int32_t j = 0; j < out; j++) {
                yb[j] += xi * row[j];
            }
        }
    }
    for (int32_t b = 0; b < count; b++) {
        float* restrict yb = y + (size_t)b * (size_t)ystride;
        for (int32_t j = 0; j < out; j++) {
            yb[j] += bias[j];
        }
    }
}

/* exp(x) within 2 ulp, branch-free so that loops over it vectorize (libm's expf is a call per element): Cephes'
 * expf (Cody-Waite reduction by ln 2, degree-6 polynomial), x clamped to [-87, 88]. */
static inline float policy_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * (r * r) + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return q * scale;
}

/* tanh(x) within a few ulp, branch-free: Cephes' tanhf (an odd polynomial below 0.625, else 1 - 2 / (e^2|x| + 1)). */
static inline float policy_tanh(float x) {
    const float a = x < 0.0f ? -x : x;
    const float z = x * x;
    float small = -5.70498872745e-3f;
    small = small * z + 2.06390887954e-2f;
    small = small * z - 5.37397155531e-2f;
    small = small * z + 1.33314422036e-1f;
    small = small * z - 3.33332819422e-1f;
    small = small * z * a + a;
    const float large = 1.0f - 2.0f / (policy_exp(2.0f * a) + 1.0f);
    const float y = a < 0.625f ? small : large;
    return x < 0.0f ? -y : y;
}

static inline float policy_sigmoid(float x) {
    return 1.0f / (1.0f + policy_exp(-x));
}

static inline void policy_activate(float* restrict y, int32_t n, int activation) {
    if (activation == POLICY_RELU) {
        for (int32_t j = 0; j < n; j++) {
            y[j] = y[j] > 0.0f ? y[j] : 0.0f;
        }
    } else if (activation == POLICY_TANH) {
        for (int32_t j = 0; j < n; j++) {
            y[j] = policy_tanh(y[j]);
        }
    } else { /* exact GELU, torch nn.GELU's default: x / 2 (1 + erf(x / sqrt 2)) */
        for (int32_t j = 0; j < n; j++) {
            y[j] = y[j] * 0.5f * (1.0f + erff(y[j] * 0.70710678118654752440f));
        }
    }
}

/* Logits [count][A] of a block of `count` <= POLICY_BLOCK agents from their observations `obs` ([count][obs_size]
 * float32, or int8 codes when `int_obs`); `h`, `c` are their LSTM states [count][H] (updated), NULL for an MLP. */
static inline void policy_forward(Policy* p, const void* obs, int int_obs, int32_t count, float* restrict h,
                                  float* restrict c, float* restrict logits) {
    const int32_t H = p->hidden, O = p->obs_size, A = p->num_actions;
    const int32_t width = p->out_dim > H ? p->out_dim : H;
    float* x = p->scratch;                          /* [BLOCK][O] */
    float* y0 = x + POLICY_BLOCK * p->obs_size;     /* [BLOCK][width] */
    float* y1 = y0 + POLICY_BLOCK * width;          /* [BLOCK][width] */
    float* gi = y1 + POLICY_BLOCK * width;          /* [BLOCK][4H] */
    float* gh = gi + (size_t)POLICY_BLOCK * 4 * H; /* [BLOCK][4H] */
    const int8_t* obs_i = (const int8_t*)obs;
    const float* in = (const float*)obs;
    int32_t in_stride = O;
    if (int_obs && !(p->arch == POLICY_LSTM && p->num_codes > 0)) {
        for (int32_t q = 0; q < count * O; q++) {
            x[q] = (float)obs_i[q];
        }
        in = x;
    }
    if (p->arch == POLICY_LSTM) {
        if (p->num_codes > 0) {
            /* one-hot input: the encoder sums the weight rows of the codes present, in cell order */
            const int32_t K = p->num_codes;
            for (int32_t b = 0; b < count; b++) {
                float* restrict e = y0 + (size_t)b * (size_t)H;
                const int8_t* codes = obs_i + (size_t)b * (size_t)O;
                for (int32_t j = 0; j < H; j++) {
                    e[j] = 0.0f;
                }
                for (int32_t q = 0; q < O; q++) {
                    const int32_t code = codes[q];
                    if (code < 0 || code >= K) {
                        continue; /* torch would reject it; a zero one-hot row here */
                    }
                    const float* restrict row = p->enc_w + ((size_t)q * (size_t)K + (size_t)code) * (size_t)H;
                    for (int32_t j = 0; j < H; j++) {
                        e[j] += row[j];
                    }
                }
                for (int32_t j = 0; j < H; j++) {
                    e[j] += p->enc_b[j];
                }
            }
        } else {
            policy_linear(y0, H, in, in_stride, p->enc_w, p->enc_b, O, H, count);
        }
        policy_activate(y0, count * H, POLICY_RELU);
        policy_linear(gi, 4 * H, y0, H, p->ih_w, p->ih_b, H, 4 * H, count);
        policy_linear(gh, 4 * H, h, H, p->hh_w, p->hh_b, H, 4 * H, count);
        for (int32_t b = 0; b < count; b++) {
            float* restrict g = gi + (size_t)b * 4 * (size_t)H;
            const float* restrict g2 = gh + (size_t)b * 4 * (size_t)H;
            float* restrict hb = h + (size_t)b * (size_t)H;
            float* restrict cb = c + (size_t)b * (size_t)H;
            for (int32_t j = 0; j < 4 * H; j++) {
                g[j] += g2[j];
            }
            for (int32_t j = 0; j < H; j++) {
                const float ig = policy_sigmoid(g[j]), fg = policy_sigmoid(g[H + j]);
                const float gg = policy_tanh(g[2 * H + j]), og = policy_sigmoid(g[3 * H + j]);
                cb[j] = fg * cb[j] + ig * gg;
                hb[j] = og * policy_tanh(cb[j]);
            }
        }
        in = h;
        in_stride = H;
    } else {
        float* out = y0;
        for (int32_t k = 0; k < p->num_layers; k++) {
            policy_linear(out, width, in, in_stride, p->w[k], p->b[k], p->layer_in[k], H, count);
            for (int32_t b = 0; b < count; b++) {
                policy_activate(out + (size_t)b * (size_t)width, H, p->activation);
            }
            in = out;
            in_stride = width;
            out = out == y0 ? y1 : y0;
        }
    }
    policy_linear(logits, A, in, in_stride, p->head_w, p->head_b, p->out_dim, A, count);
}

/* The first index of the largest logit (as torch.argmax). */
static inline int32_t policy_argmax(const float* logits, int32_t n) {
    int32_t best = 0;
    for (int32_t a = 1; a < n; a++) {
        if (logits[a] > logits[best]) {
            best = a;
        }
    }
    return best;
}

/* A sample from softmax(logits), with 24 random bits. */
static inline int32_t policy_sample(const float* logits, int32_t n, uint64_t bits) {
    const float top = logits[policy_argmax(logits, n)];
    float probs[64];
    float total = 0.0f;
    for (int32_t a = 0; a < n; a++) {
        probs[a] = expf(logits[a] - top);
        total += probs[a];
    }
    const float u = (float)(bits >> 40) * 0x1.0p-24f * total;
    float cumulative = 0.0f;
    for (int32_t a = 0; a < n; a++) {
        cumulative += probs[a];
        if (u < cumulative) {
            return a;
        }
    }
    return n - 1;
}

#endif /* THRUST_WEB_POLICY_H */
