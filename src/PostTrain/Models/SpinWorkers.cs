using System.Diagnostics;

namespace PostTrain.Models;

/// <summary>
/// A few long-lived threads that run the chunks of a parallel loop, for calls too short for
/// Parallel.For: a batch-1 decode step makes about 170 matrix-vector products of 0.05-0.5 ms
/// each, and waking a sleeping thread-pool thread costs a sizeable part of that. Between calls
/// the workers spin for <see cref="SpinMilliseconds"/> (as OpenMP's workers do), then sleep.
/// Chunks are claimed dynamically, so a late worker only means the caller does more of them.
/// One loop runs at a time; a caller that finds the workers busy runs its chunks itself.
/// </summary>
internal sealed class SpinWorkers
{
    /// <summary>How long an idle worker spins before it sleeps.</summary>
    public const double SpinMilliseconds = 2;

    static readonly object s_create = new();
    static SpinWorkers? s_shared;

    readonly object dispatch = new(), gate = new();
    readonly List<Thread> threads = [];
    // The generation (bits 32-63), its chunk count (16-31) and the next unclaimed chunk (0-15).
    long state;
    int done, sleeping;
    Action<int>? body;

    /// <summary>The process's workers, grown to <paramref name="threads"/> - 1 (the caller is the other one).</summary>
    public static SpinWorkers Shared(int threads)
    {
        var shared = s_shared;
        if (shared is not null && shared.threads.Count >= threads - 1) return shared;
        lock (s_create)
        {
            s_shared ??= new SpinWorkers();
            s_shared.Grow(threads - 1);
            return s_shared;
        }
    }

    void Grow(int workers)
    {
        lock (dispatch)
        {
            while (threads.Count < workers)
            {
                var t = new Thread(Work) { IsBackground = true, Name = $"PostTrain GEMV worker {threads.Count + 1}" };
                threads.Add(t);
                t.Start();
            }
        }
    }

    /// <summary>Runs body(0..count-1), the calling thread taking part; returns when all are done.</summary>
    public void For(int chunks, Action<int> action)
    {
        if (chunks > MaxChunks) throw new ArgumentOutOfRangeException(nameof(chunks), $"at most {MaxChunks} chunks");
        if (chunks <= 1 || threads.Count == 0 || !Monitor.TryEnter(dispatch))
        {
            for (int c = 0; c < chunks; c++) action(c);
            return;
        }
        try
        {
            body = action;
            Volatile.Write(ref done, 0);
            long generation = (Interlocked.Read(ref state) >> 32) + 1;
            Interlocked.Exchange(ref state, generation << 32 | (long)chunks << 16); // publishes the body
            if (Volatile.Read(ref sleeping) > 0)
                lock (gate) Monitor.PulseAll(gate);
            Claim(generation, action);
            var spin = new SpinWait();
            while (Volatile.Read(ref done) < chunks) spin.SpinOnce(-1);
            body = null;
        }
        finally
        {
            Monitor.Exit(dispatch);
        }
    }

    const int MaxChunks = 0xFFFF;

    // Runs chunks of this generation until none is left unclaimed. The body of a generation
    // changes only once all its chunks are done, so a claimed chunk runs the right body.
    void Claim(long generation, Action<int> action)
    {
        while (true)
        {
            long s = Interlocked.Read(ref state);
            int next = (int)(s & 0xFFFF), chunks = (int)((s >> 16) & 0xFFFF);
            if (s >> 32 != generation || next >= chunks) return;
            if (Interlocked.CompareExchange(ref state, s + 1, s) != s) continue;
            action(next);
            Interlocked.Increment(ref done);
        }
    }

    void Work()
    {
        long seen = 0;
        long spinTicks = (long)(Stopwatch.Frequency * SpinMilliseconds / 1000);
        while (true)
        {
            long idleSince = Stopwatch.GetTimestamp();
            long generation;
            while ((generation = Interlocked.Read(ref state) >> 32) == seen)
            {
                if (Stopwatch.GetTimestamp() - idleSince < spinTicks)
                {
                    Thread.SpinWait(8);
                    continue;
                }
                lock (gate)
                {
                    Interlocked.Increment(ref sleeping); // a full fence before reading state again
                    while (Interlocked.Read(ref state) >> 32 == seen) Monitor.Wait(gate);
                    Interlocked.Decrement(ref sleeping);
                }
            }
            seen = generation;
            // Read after the generation; if it is already a later generation's, Claim finds
            // this one's chunks all claimed and returns.
            var action = body;
            if (action is not null) Claim(generation, action);
        }
    }
}
