using PostTrain.Data;
using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

/// <summary>Padding and packing change nothing about how a sequence scores.</summary>
public class ModelInvarianceTests
{
    static readonly int[][] Sequences =
    [
        [5, 17, 33, 2, 90, 41, 7, 8, 60],
        [11, 3, 72],
        [44, 45, 46, 47, 12, 13],
    ];

    public static TheoryData<Architecture, bool> Architectures => new()
    {
        { Architecture.Qwen2, true },
        { Architecture.Qwen3, false },
        { Architecture.Llama, false },
    };

    static ModelConfig ConfigFor(Architecture arch, bool tied) => TestModels.Config(arch, tied,
        scaling: arch == Architecture.Llama ? new RopeScaling("llama3", 8.0, 1.0, 4.0, 16) : null);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void LeftPaddedRowScoresAsAlone(Architecture arch, bool tied)
    {
        using var model = TestModels.Random(ConfigFor(arch, tied), seed: 1);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask, positions) = Batching.LeftPad(Sequences);
        var batch = model.Forward(ids, mask, positions);
        long width = ids.shape[1];
        for (int r = 0; r < Sequences.Length; r++)
        {
            var alone = model.Forward(TestModels.Ids(Sequences[r]))[0];
            var padded = batch[r].narrow(0, width - Sequences[r].Length, Sequences[r].Length);
            Assert.True(TestModels.MaxAbsDiff(alone, padded) < 1e-5f, $"row {r} differs by {TestModels.MaxAbsDiff(alone, padded)}");
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void RightPaddedRowScoresAsAlone(Architecture arch, bool tied)
    {
        using var model = TestModels.Random(ConfigFor(arch, tied), seed: 2);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask) = Batching.RightPad(Sequences);
        var batch = model.Forward(ids, mask);
        for (int r = 0; r < Sequences.Length; r++)
        {
            var alone = model.Forward(TestModels.Ids(Sequences[r]))[0];
            var padded = batch[r].narrow(0, 0, Sequences[r].Length);
            Assert.True(TestModels.MaxAbsDiff(alone, padded) < 1e-5f);
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void PackedDocumentsScoreAsAlone(Architecture arch, bool tied)
    {
        using var model = TestModels.Random(ConfigFor(arch, tied), seed: 3);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, positions) = Batching.Pack(Sequences);
        var packed = model.Forward(ids, positionIds: positions)[0];
        long offset = 0;
        foreach (var s in Sequences)
        {
            var alone = model.Forward(TestModels.Ids(s))[0];
            Assert.True(TestModels.MaxAbsDiff(alone, packed.narrow(0, offset, s.Length)) < 1e-5f);
            offset += s.Length;
        }
    }

    [Fact]
    public void PackingIsDetectedFromPositionIdsOnly()
    {
        using var scope = NewDisposeScope();
        Assert.Null(AttentionMask.PackedDocuments(tensor(new long[] { 0, 1, 2, 3 }, [1, 4])));
        var two = AttentionMask.PackedDocuments(tensor(new long[] { 0, 1, 2, 0, 1, 2 }, [1, 6]))!;
        Assert.Equal(new long[] { 0, 0, 0, 1, 1, 1 }, two.data<long>().ToArray());
        var docs = AttentionMask.PackedDocuments(tensor(new long[] { 0, 1, 0, 1, 2, 0 }, [1, 6]))!;
        Assert.Equal(new long[] { 0, 0, 1, 1, 1, 2 }, docs.data<long>().ToArray());
    }

    [Fact]
    public void ForwardPassesDoNotLeakTensors()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Qwen3, false));
        var (ids, mask, positions) = Batching.LeftPad(Sequences);
        void Step()
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(ids, mask, positions);
            var loss = logits.logsumexp(-1).mean();
            loss.backward();
            model.zero_grad();
        }
        Step(); // the first step allocates gradients
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 20; i++) Step();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        ids.Dispose(); mask.Dispose(); positions.Dispose();
    }
}
