using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PostTrain;

/// <summary>
/// glibc malloc settings for libtorch, applied in-process when this assembly loads (Linux only).
/// libtorch frees and re-allocates its large per-step buffers (logits, activations, gradients)
/// every step. glibc serves blocks above its mmap threshold (128 KB, raised on the fly up to
/// 32 MB) with their own mmap and unmaps them when freed, and returns the free top of the heap to
/// the system past its trim threshold; either way every step page-faults the same memory in
/// again. Two <c>mallopt</c> calls keep freed memory in the process instead: M_MMAP_MAX = 0 (no
/// mmap for large blocks: they come from the heap and are reused) and M_TRIM_THRESHOLD = -1 (never
/// trim). That is what <c>GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295</c>
/// did when the <c>posttrain</c> script exported it, now for the installed tool and any program
/// that uses the library, with no environment variable. (mallopt takes an int, and mallopt(3)
/// documents 32 MB as M_MMAP_THRESHOLD's maximum; M_MMAP_MAX = 0 needs neither.) The cost is the
/// same as before: the process keeps its peak heap until it exits.
/// Threads other than the process's first one use glibc's other arenas, where blocks over 64 MB
/// are always mapped and unmapped; the CLI runs its work on the first thread.
/// If the environment already makes a malloc choice (any <c>glibc.malloc.</c> tunable in
/// <c>GLIBC_TUNABLES</c>, or one of the older <c>MALLOC_*_</c> variables), nothing is changed:
/// <c>GLIBC_TUNABLES=glibc.malloc.tcache_count=7</c> (glibc's default value) runs with glibc's
/// own behaviour.
/// </summary>
public static partial class NativeAllocator
{
    // <malloc.h>
    const int M_TRIM_THRESHOLD = -1;
    const int M_MMAP_MAX = -4;

    static readonly string[] LegacyVariables = ["MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST"];
    static readonly Lock Gate = new();

    /// <summary>What <see cref="Configure"/> did, in words (for benchmarks and diagnostics).</summary>
    public static string Status { get; private set; } = "not configured";

#pragma warning disable CA2255 // a library's module initializer, on purpose: every host gets the setting before libtorch allocates
    [ModuleInitializer]
    internal static void OnLoad() => Configure();
#pragma warning restore CA2255

    /// <summary>
    /// Applies the settings once (later calls return the first result). It runs when the PostTrain
    /// assembly loads; call it yourself only to read <see cref="Status"/>.
    /// </summary>
    public static string Configure()
    {
        lock (Gate)
        {
            if (Status != "not configured") return Status;
            Status = Apply();
            return Status;
        }
    }

    static string Apply()
    {
        if (!OperatingSystem.IsLinux()) return "unchanged: not Linux";
        if (EnvironmentChoosesMalloc(Environment.GetEnvironmentVariable)) return "unchanged: the environment sets malloc options";
        try
        {
            if (Mallopt(M_MMAP_MAX, 0) != 1) return "unchanged: mallopt(M_MMAP_MAX) refused";
            if (Mallopt(M_TRIM_THRESHOLD, -1) != 1) return "mmap off; mallopt(M_TRIM_THRESHOLD) refused";
            return "mmap off, trim off";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return "unchanged: no glibc"; // musl and others: libc.so.6 or its mallopt is absent
        }
    }

    /// <summary>True when the environment already sets glibc malloc options (which then win).</summary>
    internal static bool EnvironmentChoosesMalloc(Func<string, string?> variable) =>
        (variable("GLIBC_TUNABLES") ?? "").Contains("glibc.malloc.", StringComparison.Ordinal)
        || LegacyVariables.Any(name => !string.IsNullOrEmpty(variable(name)));

    [LibraryImport("libc.so.6", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);
}
