using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// RMSNorm as transformers' Qwen2RMSNorm/LlamaRMSNorm: normalise in float32, cast back to the
/// input dtype, then scale by the weight.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly double eps;

    public RmsNorm(long size, double eps, ScalarType dtype = ScalarType.Float32) : base(nameof(RmsNorm))
    {
        weight = new Parameter(torch.ones(size, dtype: dtype));
        this.eps = eps;
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var inputDtype = x.dtype;
        var h = inputDtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);
        var variance = h.square().mean([-1], keepdim: true);
        var normed = h * torch.rsqrt(variance + eps);
        return (weight * normed.to(inputDtype)).MoveToOuterDisposeScope();
    }
}
