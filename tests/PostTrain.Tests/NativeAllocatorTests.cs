namespace PostTrain.Tests;

public class NativeAllocatorTests
{
    [Fact]
    public void AppliedWhenTheAssemblyLoadsUnlessTheEnvironmentChoseMalloc()
    {
        string status = NativeAllocator.Configure();
        if (!OperatingSystem.IsLinux()) Assert.Equal("unchanged: not Linux", status);
        else if (NativeAllocator.EnvironmentChoosesMalloc(Environment.GetEnvironmentVariable)) Assert.Equal("unchanged: the environment sets malloc options", status);
        else Assert.Equal("mmap off, trim off", status); // glibc accepted both mallopt calls
        Assert.Equal(status, NativeAllocator.Configure()); // once per process
    }

    [Theory]
    [InlineData(null, null, false)]
    [InlineData("glibc.pthread.rseq=0", null, false)]
    [InlineData("glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295", null, true)]
    [InlineData("glibc.cpu.hwcaps=-AVX512F:glibc.malloc.tcache_count=7", null, true)]
    [InlineData(null, "MALLOC_TRIM_THRESHOLD_", true)]
    [InlineData(null, "MALLOC_ARENA_MAX", true)]
    public void AnExplicitMallocChoiceInTheEnvironmentWins(string? tunables, string? legacy, bool chosen)
    {
        var variables = new Dictionary<string, string?> { ["GLIBC_TUNABLES"] = tunables };
        if (legacy is not null) variables[legacy] = "1";
        Assert.Equal(chosen, NativeAllocator.EnvironmentChoosesMalloc(name => variables.GetValueOrDefault(name)));
    }
}
