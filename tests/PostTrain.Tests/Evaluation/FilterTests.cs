using System.Text.Json.Nodes;
using PostTrain.Evaluation;

namespace PostTrain.Tests.Evaluation;

/// <summary>lm-eval's filters against goldens from lm-eval's own code (tests/reference/eval_filter_goldens.py).</summary>
public class FilterTests
{
    internal static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "eval", "filters");
    internal static readonly JsonObject Golden = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "golden.json")))!.AsObject();

    static JsonArray Cases(string key) => Golden[key]!.AsArray();

    static Exception Error(string field, string message) => new InputError($"task.yaml:7: filter_list[0].{field}: {message}");

    static FilterPipeline Build(JsonObject entry, List<(string, string)>? errors = null) =>
        FilterPipeline.FromConfig(entry, (f, m) =>
        {
            errors?.Add((f, m));
            return Error(f, m);
        });

    public static TheoryData<string> FilterCaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases("filter_cases")) data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    [Theory]
    [MemberData(nameof(FilterCaseNames))]
    public void FilterGolden(string name)
    {
        var c = Cases("filter_cases").Single(x => x!["name"]!.GetValue<string>() == name)!.AsObject();
        var pipeline = Build(c["entry"]!.AsObject());
        Assert.Equal(c["entry"]!["name"]!.GetValue<string>(), pipeline.Name);
        var resps = c["resps"]!.AsArray().Select(r => (IReadOnlyList<string>)r!.AsArray().Select(s => s!.GetValue<string>()).ToList()).ToList();
        var docs = c["docs"]!.AsArray().Select(d => d!.AsObject()).ToList();
        if (c["error"] is not null)
        {
            // lm-eval raises while applying; we report it as a one-line input error.
            var e = Assert.Throws<InputError>(() => pipeline.Apply(resps, docs));
            Assert.DoesNotContain('\n', e.Message);
            return;
        }
        var actual = pipeline.Apply(resps, docs);
        var expected = c["expected"]!.AsArray();
        Assert.Equal(expected.Count, actual.Length);
        for (int i = 0; i < actual.Length; i++)
            Assert.True(JsonNode.DeepEquals(expected[i], actual[i]),
                $"document {i}: expected {expected[i]?.ToJsonString() ?? "null"}, got {actual[i]?.ToJsonString() ?? "null"}");
    }

    [Fact]
    public void EveryRegexPatternInLmEvalTasks()
    {
        // Each regex_pattern of lm-eval's task YAMLs as a lone regex filter over one document's 20 responses.
        var responses = Golden["task_responses"]!.AsArray().Select(x => x!.GetValue<string>()).ToList();
        var failures = new List<string>();
        foreach (var c in Cases("task_pattern_cases"))
        {
            var entry = new JsonObject
            {
                ["name"] = "t",
                ["filter"] = new JsonArray(new JsonObject
                {
                    ["function"] = "regex",
                    ["regex_pattern"] = c!["pattern"]!.GetValue<string>(),
                    ["group_select"] = c["group_select"]!.GetValue<int>(),
                }),
            };
            var actual = Build(entry).Apply([responses], [new JsonObject()])[0];
            if (!JsonNode.DeepEquals(c["expected"], actual))
                failures.Add($"{c["pattern"]} ({c["source"]}), group {c["group_select"]}: {actual.ToJsonString()} vs {c["expected"]!.ToJsonString()}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void GoldenCounts()
    {
        Assert.Equal(95, Cases("filter_cases").Count);
        Assert.Equal(19, Cases("rejected_configs").Count);
        Assert.Equal(150, Cases("task_pattern_cases").Count);
    }

    [Fact]
    public void ConfigsLmEvalRejectsAreRejectedWithOneLine()
    {
        foreach (var c in Cases("rejected_configs"))
        {
            var errors = new List<(string field, string message)>();
            var e = Assert.Throws<InputError>(() => Build(c!["entry"]!.AsObject(), errors));
            Assert.DoesNotContain('\n', e.Message);
            var (field, message) = Assert.Single(errors);
            Assert.StartsWith("filter[0].", field);
            // For patterns, the message is Python's re.error text.
            var py = c!["error"]!.GetValue<string>();
            if (py.StartsWith("error: ")) Assert.Equal("does not compile: " + py["error: ".Length..], message);
        }
    }

    [Theory]
    [InlineData("""{"name": "x", "filter": [{"function": "regex", "regex_pattern": "(a"}]}""", "filter[0].regex_pattern",
        "does not compile: missing ), unterminated subpattern at position 0")]
    [InlineData("""{"name": "x", "filter": [{"function": "regexp"}]}""", "filter[0].function",
        "unknown filter function 'regexp' (known: regex, multi_choice_regex, take_first, take_first_k, majority_vote, lowercase, uppercase, remove_whitespace, map)")]
    [InlineData("""{"name": "x", "filter": [{"function": "custom", "filter_fn": "f"}]}""", "filter[0].function",
        "lm-eval's 'custom' filter is not supported")]
    [InlineData("""{"name": "x", "filter": [{"function": "regex", "pattern": "a"}]}""", "filter[0].pattern", "unknown argument for regex")]
    [InlineData("""{"name": "x", "filter": [{"function": "take_first", "k": 1}]}""", "filter[0].k", "unknown argument (this filter takes none)")]
    [InlineData("""{"name": "x", "filter": [{"function": "take_first_k", "k": 8, "n": 1}]}""", "filter[0].n", "unknown argument for take_first_k")]
    [InlineData("""{"name": "x", "filter": [{"function": "take_first_k"}]}""", "filter[0].k", "is missing")]
    [InlineData("""{"name": "x", "filter": [{"function": "take_first_k", "k": "8"}]}""", "filter[0].k", "must be an integer")]
    [InlineData("""{"name": "x", "filter": [{"function": "regex", "group_select": 1.5}]}""", "filter[0].group_select", "must be an integer")]
    [InlineData("""{"name": "x", "filter": [{"function": "regex", "fallback": null}]}""", "filter[0].fallback", "must be a string")]
    [InlineData("""{"name": "x", "filter": [{"function": "map", "mapping_dict": ["A"]}]}""", "filter[0].mapping_dict",
        "must be a mapping (lm-eval asserts a dict)")]
    [InlineData("""{"name": "x", "filter": [{"function": "multi_choice_regex", "regexes_to_ignore": ["ok", "(?P<"]}]}""",
        "filter[0].regexes_to_ignore[1]", "does not compile: missing group name at position 4")]
    [InlineData("""{"name": "x", "filter": [{"function": "multi_choice_regex", "ignore_case": "yes"}]}""",
        "filter[0].ignore_case", "must be true or false")]
    [InlineData("""{"name": "x", "filter": [{}]}""", "filter[0].function", "is missing")]
    [InlineData("""{"name": "x", "filter": ["take_first"]}""", "filter[0]", "must be an object with a function key")]
    [InlineData("""{"filter": []}""", "name", "is missing")]
    [InlineData("""{"name": 3, "filter": []}""", "name", "must be a string")]
    [InlineData("""{"name": "x"}""", "filter", "is missing")]
    [InlineData("""{"name": "x", "filter": [], "extra": 1}""", "extra", "unknown key (a filter_list entry has name and filter)")]
    public void BadConfigNamesTheField(string json, string field, string message)
    {
        var errors = new List<(string, string)>();
        var e = Assert.Throws<InputError>(() => Build(JsonNode.Parse(json)!.AsObject(), errors));
        Assert.Equal((field, message), Assert.Single(errors));
        Assert.Equal($"task.yaml:7: filter_list[0].{field}: {message}", e.Message);
    }

    static JsonNode[] Run(string json, params string[][] resps) =>
        Build(JsonNode.Parse(json)!.AsObject()).Apply(resps, resps.Select(_ => new JsonObject()).ToList());

    [Fact]
    public void ErrorsWhileApplyingNameTheField()
    {
        var errors = new List<(string, string)>();
        var p = Build(JsonNode.Parse("""{"name": "x", "filter": [{"function": "regex", "regex_pattern": "\\d", "group_select": -3}]}""")!.AsObject(), errors);
        Assert.Throws<InputError>(() => p.Apply([["1 2"]], [new JsonObject()]));
        Assert.Equal(("filter[0].group_select", "is -3, but document 0, response 0 has 2 matches (lm-eval fails with IndexError)"),
            Assert.Single(errors));

        errors.Clear();
        p = Build(JsonNode.Parse("""{"name": "x", "filter": [{"function": "take_first_k", "k": 3}]}""")!.AsObject(), errors);
        Assert.Throws<InputError>(() => p.Apply([["a", "b"], ["c", "d", "e"]], [new JsonObject(), new JsonObject()]));
        Assert.Equal(("filter[0].k", "is 3, but document 0 has 2 responses (lm-eval asserts at least k; raise the task's repeats)"),
            Assert.Single(errors));

        errors.Clear();
        p = Build(JsonNode.Parse("""{"name": "x", "filter": [{"function": "multi_choice_regex"}]}""")!.AsObject(), errors);
        Assert.Throws<InputError>(() => p.Apply([["a"]], [new JsonObject()]));
        Assert.Equal(("filter[0]", "document 0 has no \"choices\" (multi_choice_regex reads them)"), Assert.Single(errors));
    }

    [Fact]
    public void NoneIsTakeFirst()
    {
        Assert.Equal("none", FilterPipeline.None.Name);
        var r = FilterPipeline.None.Apply([["a", "b"], ["c"]], [new JsonObject(), new JsonObject()]);
        Assert.Equal(["a", "c"], r.Select(x => x.GetValue<string>()));
        Assert.Throws<InvalidOperationException>(() => FilterPipeline.None.Apply([[]], [new JsonObject()]));
    }

    [Fact]
    public void OutputShapes()
    {
        // A string once take_first reduced the list; a list of strings before; other JSON where map put it.
        var r = Run("""{"name": "x", "filter": [{"function": "regex", "regex_pattern": "(\\d)"}]}""", ["1", "x"]);
        Assert.Equal("""["1","[invalid]"]""", r[0].ToJsonString());
        r = Run("""{"name": "x", "filter": [{"function": "map", "mapping_dict": {"a": 1}, "default_value": {"k": [true]}}, {"function": "take_first"}]}""",
            ["a"], ["b"]);
        Assert.Equal("1", r[0].ToJsonString());
        Assert.Equal("""{"k":[true]}""", r[1].ToJsonString());
        Assert.Empty(Run("""{"name": "x", "filter": [{"function": "take_first_k", "k": 1}]}"""));
    }

    [Fact]
    public void PythonWhitespaceIsTheGoldens()
    {
        var expected = Golden["python_isspace"]!.AsArray().Select(x => x!.GetValue<int>()).ToHashSet();
        for (int cp = 0; cp <= 0x10FFFF; cp++) Assert.True(expected.Contains(cp) == PyString.IsSpace(cp), $"U+{cp:X4}");
        Assert.Equal("x", PyString.Strip("\x1c\u3000 x\u2029\x85"));
        Assert.Equal("\u200bx", PyString.Strip("\u200bx"));
    }

    [Fact]
    public void PythonCasingMatchesStrLowerAndUpper()
    {
        // casing.json: every code point that Python 3.11 (Unicode 14.0) lower()s or upper()s to something else.
        var table = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "casing.json")))!.AsArray();
        var changed = new HashSet<int>();
        var diffs = new List<string>();
        foreach (var e in table)
        {
            int cp = e![0]!.GetValue<int>();
            changed.Add(cp);
            var s = char.ConvertFromUtf32(cp);
            if (cp == 0x3A3) s = "\u03A3"; // alone, not final: σ
            var (lower, upper) = (e[1]!.GetValue<string>(), e[2]!.GetValue<string>());
            if (PyString.Lower(s) != lower || PyString.Upper(s) != upper)
                diffs.Add($"U+{cp:X4}: lower {Hex(PyString.Lower(s))} vs {Hex(lower)}, upper {Hex(PyString.Upper(s))} vs {Hex(upper)}");
        }
        // Code points Python leaves alone but .NET (a later Unicode) maps are allowed only where Unicode 14 had none.
        var extra = new List<string>();
        for (int cp = 0; cp <= 0x10FFFF; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF || changed.Contains(cp)) continue;
            var s = char.ConvertFromUtf32(cp);
            if (PyString.Lower(s) != s || PyString.Upper(s) != s) extra.Add($"U+{cp:X4}");
        }
        Assert.True(diffs.Count == 0, string.Join("; ", diffs.Take(20)) + $" ({diffs.Count})");
        Assert.All(extra, x => Assert.True(UnicodeAfter14(int.Parse(x[2..], System.Globalization.NumberStyles.HexNumber)), x));
    }

    // Case pairs Unicode 16.0 added, which .NET 10's tables have and Python 3.11's (Unicode 14.0) do not: new
    // capitals for ƛ and ɤ, Cyrillic TJE, Latin additions and the Garay script (52 of these were unassigned in 14.0).
    static bool UnicodeAfter14(int cp) => cp is 0x19B or 0x264 or 0x1C89 or 0x1C8A or >= 0xA7CB and <= 0xA7CD
        or >= 0xA7DA and <= 0xA7DC or >= 0x10D50 and <= 0x10D65 or >= 0x10D70 and <= 0x10D85;

    static string Hex(string s) => string.Join(" ", s.EnumerateRunes().Select(r => $"{r.Value:X4}"));

    [Fact]
    public void FinalSigma()
    {
        Assert.Equal("οδος οδος.", PyString.Lower("ΟΔΟΣ ΟΔΟΣ."));
        Assert.Equal("σ", PyString.Lower("Σ"));
        Assert.Equal("aς'", PyString.Lower("AΣ'"));
        Assert.Equal("aσ'a", PyString.Lower("AΣ'A"));
        Assert.Equal("ⓐς", PyString.Lower("ⓐΣ"));
        Assert.Equal("1σ", PyString.Lower("1Σ"));
    }
}
