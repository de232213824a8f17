// Test classes run one after another: decoding switches libtorch to one thread for the whole
// process while few rows remain (Gemv.SmallBatchDecoding), and libtorch's results can depend on
// its thread count, so a class running beside another could see its bitwise reproducibility
// checks fail for a reason that is not theirs.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]

// Every test's temporary directories (TestModels.TempDir) are removed after it, pass or fail.
[assembly: PostTrain.Tests.RemoveTempDirectories]

namespace PostTrain.Tests
{
    /// <summary>After each test, removes the directories it made with <see cref="TestModels.TempDir"/>.</summary>
    [AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class | AttributeTargets.Method)]
    public sealed class RemoveTempDirectoriesAttribute : Xunit.Sdk.BeforeAfterTestAttribute
    {
        public override void After(System.Reflection.MethodInfo methodUnderTest) => TestModels.RemoveTempDirs();
    }
}
