using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>Pre-norm decoder block: x + attn(norm(x)), then h + mlp(norm(h)).</summary>
public sealed class DecoderLayer : nn.Module
{
    readonly Attention self_attn;
    readonly Mlp mlp;
    readonly RmsNorm input_layernorm, post_attention_layernorm;

    public DecoderLayer(ModelConfig c, ScalarType dtype) : base(nameof(DecoderLayer))
    {
        self_attn = new Attention(c, dtype);
        mlp = new Mlp(c, dtype);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache = null, int layer = 0)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache, layer);
        var y = h + mlp.forward(post_attention_layernorm.forward(h));
        return y.MoveToOuterDisposeScope();
    }
}
