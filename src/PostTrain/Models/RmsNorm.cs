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
    // The epsilon as one Scalar that lives as long as the module. An implicit double -> Scalar
    // conversion per call makes a Scalar whose only reference is the call itself; its finalizer
    // can run while libtorch still reads it (TorchSharp passes the raw handle), which once ended
    // a demo run in "INTERNAL ASSERT FAILED at c10/core/Scalar.h" here.
    readonly Scalar epsScalar;

    public RmsNorm(long size, double eps, ScalarType dtype = ScalarType.Float32) : base(nameof(RmsNorm))
    {
        weight = new Parameter(torch.ones(size, dtype: dtype));
        this.eps = eps;
        epsScalar = eps.ToScalar();
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var inputDtype = x.dtype;
        bool float32 = inputDtype == ScalarType.Float32;
        var h = float32 ? x : x.to(ScalarType.Float32);
        // In place where the value is the same: fewer tensors for a decode step's many small ops.
        var normed = h * h.square().mean([-1], keepdim: true).add_(epsScalar).rsqrt_();
        return (weight * (float32 ? normed : normed.to(inputDtype))).MoveToOuterDisposeScope();
    }
}
