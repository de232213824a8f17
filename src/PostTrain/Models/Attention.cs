using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// Multi-head attention with grouped-query heads, RoPE, optional q/k/v/o biases and (Qwen3)
/// per-head RMSNorm on q and k; computed by scaled_dot_product_attention.
/// Field names are transformers' module names, so parameter names match checkpoints.
/// </summary>
public sealed class Attention : nn.Module
{
    readonly Projection q_proj, k_proj, v_proj, o_proj;
    readonly RmsNorm? q_norm, k_norm;
    readonly int heads, kvHeads, headDim;

    public Attention(ModelConfig c, ScalarType dtype) : base(nameof(Attention))
    {
        heads = c.NumAttentionHeads;
        kvHeads = c.NumKeyValueHeads;
        headDim = c.HeadDim;
        q_proj = new Projection(c.HiddenSize, heads * headDim, c.QkvBias, dtype);
        k_proj = new Projection(c.HiddenSize, kvHeads * headDim, c.QkvBias, dtype);
        v_proj = new Projection(c.HiddenSize, kvHeads * headDim, c.QkvBias, dtype);
        o_proj = new Projection(heads * headDim, c.HiddenSize, c.OutputBias, dtype);
        if (c.QkNorm)
        {
            q_norm = new RmsNorm(headDim, c.RmsNormEps, dtype);
            k_norm = new RmsNorm(headDim, c.RmsNormEps, dtype);
        }
        RegisterComponents();
    }

    /// <param name="x">[batch, seq, hidden]</param>
    /// <param name="cos">[batch, 1, seq, headDim]</param>
    /// <param name="sin">[batch, 1, seq, headDim], signed as <see cref="RotaryEmbedding.CosSin"/> gives it</param>
    /// <param name="mask">boolean [batch, 1, seq, keys] (keys = cached + seq), or null: causal
    /// when seq &gt; 1, everything when one query attends over a cache</param>
    /// <param name="cache">optional: this step's keys and values are appended to it and the
    /// queries attend over all cached positions</param>
    /// <param name="layer">this layer's index in the cache</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache = null, int layer = 0)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        var q = q_proj.forward(x).view(b, s, heads, headDim);
        var k = k_proj.forward(x).view(b, s, kvHeads, headDim);
        var v = v_proj.forward(x).view(b, s, kvHeads, headDim).transpose(1, 2);
        if (q_norm is not null) q = q_norm.forward(q);
        if (k_norm is not null) k = k_norm.forward(k);
        q = RotaryEmbedding.Apply(q.transpose(1, 2), cos, sin);
        k = RotaryEmbedding.Apply(k.transpose(1, 2), cos, sin);
        if (cache is not null)
        {
            (k, v) = cache.Update(layer, k, v);
            if (s == 1) return o_proj.forward(DecodeOne(q, k, v, mask)).MoveToOuterDisposeScope();
        }
        k = RepeatKv(k);
        v = RepeatKv(v);
        var o = mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: s > 1)
            : nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask);
        o = o.transpose(1, 2).reshape(b, s, heads * headDim);
        return o_proj.forward(o).MoveToOuterDisposeScope();
    }

    // One query per row over cached keys [b, kvHeads, keys, d]: rather than repeating every
    // cached key and value for each query head (a copy of the whole cache per layer and step),
    // the query heads of a group become the group's query rows: head h = g * groups + j uses key
    // head g, exactly as repeat_kv pairs them. mask: [b, 1, 1, keys] or null (all keys visible).
    Tensor DecodeOne(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        long b = q.shape[0];
        int groups = heads / kvHeads;
        var grouped = q.reshape(b, kvHeads, groups, headDim);
        var o = mask is null
            ? nn.functional.scaled_dot_product_attention(grouped, k, v)
            : nn.functional.scaled_dot_product_attention(grouped, k, v, attn_mask: mask);
        return o.reshape(b, 1, heads * headDim);
    }

    // [b, kvHeads, s, d] -> [b, heads, s, d]: each key/value head serves heads/kvHeads query heads.
    Tensor RepeatKv(Tensor t)
    {
        if (kvHeads == heads) return t;
        long b = t.shape[0], s = t.shape[2];
        int groups = heads / kvHeads;
        return t.unsqueeze(2).expand(b, kvHeads, groups, s, headDim).reshape(b, heads, s, headDim);
    }
}
