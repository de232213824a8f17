using System.Text;

namespace PostTrain.Evaluation;

/// <summary>
/// Statistics of two runs scored on the same documents. Each document contributes a pair of
/// <see cref="DocValue"/>s; a run's score over a set of documents is ΣSum / ΣCount (the mean of
/// per-document numbers, or the flattened mean of per-document lists, as lm-eval aggregates), and
/// the difference is the other run's score minus the baseline's.
/// </summary>
public static class PairedStatistics
{
    /// <summary>Score(b) − Score(a) over all pairs.</summary>
    public static double Difference(ReadOnlySpan<DocValue> a, ReadOnlySpan<DocValue> b)
    {
        double sa = 0, ca = 0, sb = 0, cb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sa += a[i].Sum; ca += a[i].Count;
            sb += b[i].Sum; cb += b[i].Count;
        }
        return sb / cb - sa / ca;
    }

    /// <summary>
    /// Paired bootstrap percentile interval of <see cref="Difference"/>: documents are drawn with
    /// replacement (both runs' values of a drawn document together), the difference is recomputed
    /// on each of <paramref name="iterations"/> resamples, and the interval runs between the
    /// (1 − confidence)/2 and (1 + confidence)/2 quantiles of those differences (linear
    /// interpolation between order statistics, numpy's default). Resamples with no elements (only
    /// possible when some lists are empty) are skipped.
    /// </summary>
    public static (double Low, double High) BootstrapInterval(ReadOnlySpan<DocValue> a, ReadOnlySpan<DocValue> b,
        int iterations, double confidence, ulong seed)
    {
        if (a.Length != b.Length || a.Length == 0) throw new ArgumentException("need the same, non-zero number of values from each run");
        var rng = new SplitMix64(seed);
        var stats = new List<double>(iterations);
        int n = a.Length;
        for (int it = 0; it < iterations; it++)
        {
            double sa = 0, ca = 0, sb = 0, cb = 0;
            for (int k = 0; k < n; k++)
            {
                int i = rng.NextInt(n);
                sa += a[i].Sum; ca += a[i].Count;
                sb += b[i].Sum; cb += b[i].Count;
            }
            if (ca > 0 && cb > 0) stats.Add(sb / cb - sa / ca);
        }
        if (stats.Count == 0) return (double.NaN, double.NaN);
        stats.Sort();
        double tail = (1 - confidence) / 2;
        return (Quantile(stats, tail), Quantile(stats, 1 - tail));
    }

    /// <summary>The q-quantile of sorted values, interpolating linearly between order statistics (type 7).</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        double h = (sorted.Count - 1) * q;
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>
    /// McNemar's exact test: a two-sided binomial test that the discordant pairs split evenly.
    /// <paramref name="onlyA"/> documents right (1) in the baseline only, <paramref name="onlyB"/>
    /// right in the other run only; p = min(1, 2·P(X ≤ min(onlyA, onlyB))) for X ~ Binomial(onlyA + onlyB, 1/2).
    /// With no discordant pairs the runs agree on every document and p = 1.
    /// </summary>
    public static double McNemarExact(int onlyA, int onlyB)
    {
        int n = onlyA + onlyB;
        if (n == 0) return 1;
        int k = Math.Min(onlyA, onlyB);
        // log P(X = i) = log C(n, i) − n log 2, summed from i = 0 with log-sum-exp (n may be large).
        double logTerm = -n * Math.Log(2);
        double max = logTerm, sum = 1; // sum of exp(logTerm_i − max)
        for (int i = 1; i <= k; i++)
        {
            logTerm += Math.Log((double)(n - i + 1) / i);
            if (logTerm > max)
            {
                sum = sum * Math.Exp(max - logTerm) + 1;
                max = logTerm;
            }
            else sum += Math.Exp(logTerm - max);
        }
        return Math.Min(1, 2 * Math.Exp(max + Math.Log(sum)));
    }

    /// <summary>
    /// A paired sign-flip permutation test of <see cref="Difference"/> = 0: under the null the two
    /// runs' values of each document are exchangeable, so each pair is swapped with probability
    /// 1/2 and the difference recomputed, <paramref name="iterations"/> times.
    /// p = (1 + #{|permuted| ≥ |observed|}) / (iterations + 1).
    /// </summary>
    public static double PermutationP(ReadOnlySpan<DocValue> a, ReadOnlySpan<DocValue> b, int iterations, ulong seed)
    {
        if (a.Length != b.Length || a.Length == 0) throw new ArgumentException("need the same, non-zero number of values from each run");
        double observed = Math.Abs(Difference(a, b));
        double tolerance = 1e-12 * Math.Max(1, observed);
        var rng = new SplitMix64(seed);
        int extreme = 0;
        for (int it = 0; it < iterations; it++)
        {
            double sa = 0, ca = 0, sb = 0, cb = 0;
            for (int i = 0; i < a.Length; i += 64)
            {
                ulong bits = rng.Next();
                int end = Math.Min(a.Length, i + 64);
                for (int j = i; j < end; j++)
                {
                    bool swap = (bits >> (j - i) & 1) != 0;
                    var x = swap ? b[j] : a[j];
                    var y = swap ? a[j] : b[j];
                    sa += x.Sum; ca += x.Count;
                    sb += y.Sum; cb += y.Count;
                }
            }
            if (Math.Abs(sb / cb - sa / ca) >= observed - tolerance) extreme++;
        }
        return (1.0 + extreme) / (iterations + 1.0);
    }

    /// <summary>
    /// The seed for one (task, metric, filter): the user's seed mixed with a hash of the names, so
    /// a comparison's interval does not depend on which other tasks or runs were compared with it.
    /// </summary>
    public static ulong SeedFor(int seed, params string[] names)
    {
        ulong hash = 14695981039346656037UL; // FNV-1a 64
        foreach (var name in names)
        {
            foreach (var b in Encoding.UTF8.GetBytes(name)) hash = (hash ^ b) * 1099511628211UL;
            hash = (hash ^ 0xff) * 1099511628211UL; // a separator no UTF-8 byte equals
        }
        return new SplitMix64(hash ^ (ulong)(uint)seed * 0x9E3779B97F4A7C15UL).Next();
    }
}

/// <summary>SplitMix64 (Steele, Lea and Flood 2014): small, fast, and the same on every platform and .NET version.</summary>
public struct SplitMix64(ulong seed)
{
    ulong state = seed;

    public ulong Next()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n): Lemire's multiply-shift with rejection, so no value is favoured.</summary>
    public int NextInt(int n)
    {
        ulong bound = (ulong)n;
        ulong high = Math.BigMul(Next(), bound, out ulong low);
        if (low < bound)
        {
            ulong threshold = (0UL - bound) % bound;
            while (low < threshold) high = Math.BigMul(Next(), bound, out low);
        }
        return (int)high;
    }
}
