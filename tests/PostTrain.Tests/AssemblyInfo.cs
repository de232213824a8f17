// Test classes run one after another: decoding switches libtorch to one thread for the whole
// process while few rows remain (Gemv.SmallBatchDecoding), and libtorch's results can depend on
// its thread count, so a class running beside another could see its bitwise reproducibility
// checks fail for a reason that is not theirs.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
