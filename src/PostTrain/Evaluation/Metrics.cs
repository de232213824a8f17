using System.Collections.Concurrent;
using System.Text;

namespace PostTrain.Evaluation;

/// <summary>lm-eval's exact_match metric and the mean aggregation with its standard error
/// (<c>lm_eval/api/metrics.py</c>).</summary>
public static class Metrics
{
    static readonly ConcurrentDictionary<string, PythonRegex> RegexCache = new();

    /// <summary>
    /// lm-eval's exact_match (<c>exact_match_hf_evaluate</c>, ported from HF evaluate) for the one
    /// prediction/reference pair a document gives: 1.0 when equal after the options, else 0.0. In lm-eval's order:
    /// each of <paramref name="regexesToIgnore"/> removed (<c>re.sub(p, "", x)</c>, Python syntax) from both, then
    /// ignore_case lowercases (<c>str.lower()</c>), ignore_punctuation removes ASCII <c>string.punctuation</c>,
    /// ignore_numbers removes ASCII digits.
    /// </summary>
    /// <remarks>
    /// The strings pass through numpy arrays, and two of numpy's habits show: trailing NUL characters are dropped
    /// (a fixed-width <c>str_</c> array pads with them), and <c>np.char.lower</c> writes into an array as wide as
    /// the strings were, so a lowercase that lengthens a string is cut off ("İ" lowers to "i̇", kept as "i").
    /// With an empty regexesToIgnore list and no option the two are compared as plain Python strings.
    /// A bad pattern in regexesToIgnore throws <see cref="PythonRegexException"/>.
    /// </remarks>
    public static double ExactMatch(string prediction, string reference, bool ignoreCase = false,
        bool ignorePunctuation = false, bool ignoreNumbers = false, IReadOnlyList<string>? regexesToIgnore = null)
    {
        var p = new NumpyString(prediction);
        var r = new NumpyString(reference);
        if (regexesToIgnore is not null)
        {
            foreach (var pattern in regexesToIgnore)
            {
                var rx = RegexCache.GetOrAdd(pattern, static s => new PythonRegex(s));
                p = NumpyString.ArrayOf(rx.RemoveAll(p.Value));
                r = NumpyString.ArrayOf(rx.RemoveAll(r.Value));
            }
        }
        else
        {
            p = p.AsArray();
            r = r.AsArray();
        }
        if (ignoreCase)
        {
            p = p.AsArray().Map(PyString.Lower);
            r = r.AsArray().Map(PyString.Lower);
        }
        if (ignorePunctuation)
        {
            p = p.AsArray().Map(s => Remove(s, PunctuationAscii));
            r = r.AsArray().Map(s => Remove(s, PunctuationAscii));
        }
        if (ignoreNumbers)
        {
            p = p.AsArray().Map(s => Remove(s, "0123456789"));
            r = r.AsArray().Map(s => Remove(s, "0123456789"));
        }
        return p.Value == r.Value ? 1.0 : 0.0;
    }

    // Python's string.punctuation.
    const string PunctuationAscii = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    static string Remove(string s, string chars)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s) if (!chars.Contains(c)) sb.Append(c);
        return sb.ToString();
    }

    /// <summary>A string as lm-eval's exact_match holds it: a Python str in a list, or the one element of a numpy
    /// str_ array of <see cref="Width"/> code points (its value read back without trailing NULs).</summary>
    readonly record struct NumpyString(string Value, int Width = -1)
    {
        public bool InArray => Width >= 0;

        // np.asarray([s]) / np.array([s]): as wide as s.
        public static NumpyString ArrayOf(string s) => new(TrimNul(s), PyString.Length(s));

        public NumpyString AsArray() => InArray ? this : ArrayOf(Value);

        // np.char.lower / np.char.translate: the result is stored into an array of the same width.
        public NumpyString Map(Func<string, string> f) => new(TrimNul(PyString.Prefix(f(Value), Width)), Width);

        static string TrimNul(string s) => s.TrimEnd('\0');
    }

    /// <summary>lm-eval's "mean" aggregation: <c>sum(arr) / len(arr)</c>, summed left to right (Python 3.12+ sums
    /// exact floats with compensation; lm-eval's exact_match scores are numpy floats, which it sums plainly).
    /// lm-eval divides by zero on an empty list; this throws <see cref="ArgumentException"/>.</summary>
    public static double Mean(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("the mean of no values is undefined (lm-eval divides by zero)");
        double sum = 0.0;
        foreach (var v in values) sum += v;
        return sum / values.Count;
    }

    /// <summary>lm-eval's mean_stderr: <c>sample_stddev(arr) / sqrt(len(arr))</c>, sample_stddev dividing the sum
    /// of squared deviations from the mean by n - 1. NaN when n &lt; 2: lm-eval computes a stderr only for more
    /// than one item and otherwise reports the string "N/A" (printed as "N/A" in its results table), as it also does
    /// when bootstrap_iters is 0.</summary>
    public static double MeanStderr(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n < 2) return double.NaN;
        double mu = Mean(values);
        double ss = 0.0;
        foreach (var v in values) ss += (v - mu) * (v - mu);
        return Math.Sqrt(ss / (n - 1)) / Math.Sqrt(n);
    }
}
