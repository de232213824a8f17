using System.Text.Json.Nodes;
using PostTrain.Evaluation;

namespace PostTrain.Tests.Evaluation;

/// <summary>exact_match, mean and mean_stderr against lm-eval's own metrics.py (eval_filter_goldens.py).</summary>
public class MetricTests
{
    [Fact]
    public void ExactMatchGolden()
    {
        var cases = FilterTests.Golden["exact_match_cases"]!.AsArray();
        Assert.Equal(996, cases.Count);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            var regexes = c!["regexes_to_ignore"]?.AsArray().Select(x => x!.GetValue<string>()).ToList();
            double got = Metrics.ExactMatch(c["prediction"]!.GetValue<string>(), c["reference"]!.GetValue<string>(),
                c["ignore_case"]!.GetValue<bool>(), c["ignore_punctuation"]!.GetValue<bool>(),
                c["ignore_numbers"]!.GetValue<bool>(), regexes);
            if (got != c["expected"]!.GetValue<double>()) failures.Add(c.ToJsonString());
        }
        Assert.True(failures.Count == 0, $"{failures.Count} differ, e.g. {string.Join("\n", failures.Take(5))}");
    }

    [Fact]
    public void ExactMatchOptionsInLmEvalOrder()
    {
        Assert.Equal(1.0, Metrics.ExactMatch("The Answer.", "the answer", ignoreCase: true, ignorePunctuation: true));
        Assert.Equal(0.0, Metrics.ExactMatch("The Answer.", "the answer", ignoreCase: true));
        // Regexes run before lowercasing, so a case-sensitive pattern sees the original case.
        Assert.Equal(0.0, Metrics.ExactMatch("ANSWER: b", "b", ignoreCase: true, regexesToIgnore: ["^answer: "]));
        Assert.Equal(1.0, Metrics.ExactMatch("ANSWER: b", "b", ignoreCase: true, regexesToIgnore: ["(?i)^answer: "]));
        Assert.Equal(1.0, Metrics.ExactMatch("$1,000", "1000", regexesToIgnore: ["\\$", ","]));
        Assert.Equal(1.0, Metrics.ExactMatch("abc123", "abc", ignoreNumbers: true));
        Assert.Equal(0.0, Metrics.ExactMatch("x\u00b2", "x", ignoreNumbers: true)); // only ASCII digits
        Assert.Throws<PythonRegexException>(() => Metrics.ExactMatch("a", "a", regexesToIgnore: ["(?<n>a)"]));
    }

    public static TheoryData<string> MeanCaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in FilterTests.Golden["mean_cases"]!.AsArray()) data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    [Theory]
    [MemberData(nameof(MeanCaseNames))]
    public void MeanAndStderrGolden(string name)
    {
        var c = FilterTests.Golden["mean_cases"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == name)!;
        var values = c["values"]!.AsArray().Select(x => x!.GetValue<double>()).ToList();
        if (c["mean_error"] is not null) Assert.Throws<ArgumentException>(() => Metrics.Mean(values));
        else Assert.Equal(c["mean"]!.GetValue<double>(), Metrics.Mean(values)); // the same additions, bit for bit

        var stderr = Metrics.MeanStderr(values);
        if (c["mean_stderr"] is null) Assert.True(double.IsNaN(stderr)); // lm-eval: "N/A"
        else
        {
            var expected = c["mean_stderr"]!.GetValue<double>();
            Assert.True(Math.Abs(stderr - expected) <= 1e-12 * Math.Abs(expected), $"{stderr:R} vs {expected:R}");
        }
    }
}
