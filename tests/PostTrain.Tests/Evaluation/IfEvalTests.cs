using System.Text.Json.Nodes;
using PostTrain.Evaluation.IfEval;

namespace PostTrain.Tests.Evaluation;

/// <summary>
/// IFEval scoring against verdicts from lm-eval's own code (tests/reference/ifeval_goldens.py), plus
/// the error messages for documents lm-eval could not score.
/// </summary>
public class IfEvalTests
{
    static string FixtureDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "eval", "ifeval");

    static IEnumerable<JsonObject> Lines(string file) =>
        File.ReadLines(Path.Combine(FixtureDir, file)).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject());

    static bool[] Bools(JsonNode? n) => n!.AsArray().Select(b => b!.GetValue<bool>()).ToArray();
    static string[] Strings(JsonNode? n) => n!.AsArray().Select(b => b!.GetValue<string>()).ToArray();

    [Fact]
    public void EveryGoldenCaseGetsLmEvalsStrictAndLooseVerdicts()
    {
        var wrong = new List<string>();
        int n = 0;
        foreach (var c in Lines("golden.jsonl"))
        {
            n++;
            var name = c["name"]!.GetValue<string>();
            var r = IfEvalScorer.Score(c["doc"]!.AsObject(), c["response"]!.GetValue<string>(), name);
            var strict = Bools(c["strict"]);
            var loose = Bools(c["loose"]);
            if (!r.InstLevelStrict.SequenceEqual(strict) || !r.InstLevelLoose.SequenceEqual(loose))
                wrong.Add($"{name}: strict [{string.Join(",", r.InstLevelStrict)}] want [{string.Join(",", strict)}], " +
                          $"loose [{string.Join(",", r.InstLevelLoose)}] want [{string.Join(",", loose)}]");
            Assert.Equal(strict.All(x => x), r.PromptLevelStrict);
            Assert.Equal(loose.All(x => x), r.PromptLevelLoose);
        }
        Assert.True(n >= 120, $"only {n} golden cases");
        Assert.Empty(wrong);
    }

    [Fact]
    public void GoldensCoverEveryInstructionIdWithBothVerdicts()
    {
        var seen = new Dictionary<string, HashSet<bool>>();
        foreach (var c in Lines("golden.jsonl"))
        {
            var ids = Strings(c["doc"]!["instruction_id_list"]);
            var strict = Bools(c["strict"]);
            for (int i = 0; i < ids.Length; i++)
            {
                if (!seen.TryGetValue(ids[i], out var set)) seen[ids[i]] = set = new HashSet<bool>();
                set.Add(strict[i]);
            }
        }
        Assert.Equal(25, IfEvalScorer.InstructionIds.Count);
        foreach (var id in IfEvalScorer.InstructionIds)
            Assert.True(seen.TryGetValue(id, out var s) && s.Count == 2, $"{id} lacks a passing or a failing golden case");
    }

    [Fact]
    public void SentencesAndWordTokensMatchNltk()
    {
        foreach (var c in Lines("tokenizers.jsonl"))
        {
            var text = c["text"]!.GetValue<string>();
            Assert.Equal(Strings(c["sentences"]), PunktSentences.Split(text).ToArray());
            Assert.Equal(Strings(c["word_tokens"]), TreebankWords.Tokenize(text).ToArray());
        }
    }

    static JsonObject Doc(string id, string kwargsJson, string? extra = null) =>
        JsonNode.Parse($$"""{"key": 1, "prompt": "p", "instruction_id_list": ["{{id}}"], "kwargs": [{{kwargsJson}}]{{extra}}}""")!.AsObject();

    static string ErrorOf(JsonObject doc)
    {
        var e = Assert.Throws<InputError>(() => IfEvalScorer.Score(doc, "some response", "data.jsonl:7"));
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith("data.jsonl:7: ", e.Message);
        return e.Message;
    }

    [Theory]
    [InlineData("keywords:nonexistent", "{}", "instruction_id_list[0]: unknown instruction id \"keywords:nonexistent\"")]
    [InlineData("length_constraints:number_words", """{"relation": "at least"}""", "kwargs[0].num_words: missing")]
    [InlineData("length_constraints:number_words", """{"num_words": 0, "relation": "at least"}""", "kwargs[0].num_words: missing")]
    [InlineData("length_constraints:number_words", """{"num_words": -3, "relation": "at least"}""", "kwargs[0].num_words: must be at least 0")]
    [InlineData("length_constraints:number_words", """{"num_words": "12", "relation": "at least"}""", "kwargs[0].num_words: must be an integer")]
    [InlineData("length_constraints:number_words", """{"num_words": 2.5, "relation": "at least"}""", "kwargs[0].num_words: must be an integer")]
    [InlineData("length_constraints:number_words", """{"num_words": 5, "relation": "at most"}""", "kwargs[0].relation: must be \"less than\" or \"at least\"")]
    [InlineData("length_constraints:number_words", """{"num_words": 5, "relation": "at least", "keyword": "x"}""", "kwargs[0].keyword: not an argument of length_constraints:number_words")]
    [InlineData("punctuation:no_comma", """{"num_words": 5}""", "kwargs[0].num_words: punctuation:no_comma takes no arguments")]
    [InlineData("keywords:existence", """{"keywords": "apple"}""", "kwargs[0].keywords: must be a list of strings")]
    [InlineData("keywords:existence", """{"keywords": ["(unclosed"]}""", "kwargs[0].keywords: is used as a regular expression")]
    [InlineData("keywords:letter_frequency", """{"letter": "ab", "let_frequency": 2, "let_relation": "at least"}""", "kwargs[0].letter: must be one letter")]
    [InlineData("language:response_language", """{"language": "xx"}""", "kwargs[0].language: \"xx\" is not one of lm-eval's languages")]
    [InlineData("length_constraints:nth_paragraph_first_word", """{"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}""", "kwargs[0].nth_paragraph: must be at most num_paragraphs (2)")]
    [InlineData("combination:repeat_prompt", """{"prompt_to_repeat": ""}""", "kwargs[0].prompt_to_repeat: missing")]
    public void KwargsLmEvalCouldNotUseAreOneLineInputErrors(string id, string kwargs, string expected) =>
        Assert.Contains(expected, ErrorOf(Doc(id, kwargs)));

    [Fact]
    public void MissingAndMalformedFieldsAreInputErrors()
    {
        Assert.Contains("instruction_id_list: missing", ErrorOf(JsonNode.Parse("""{"prompt": "p", "kwargs": []}""")!.AsObject()));
        Assert.Contains("kwargs: missing", ErrorOf(JsonNode.Parse("""{"prompt": "p", "instruction_id_list": []}""")!.AsObject()));
        Assert.Contains("prompt: missing", ErrorOf(JsonNode.Parse("""{"instruction_id_list": [], "kwargs": []}""")!.AsObject()));
        Assert.Contains("kwargs: has 0 entries for 1 instructions",
            ErrorOf(JsonNode.Parse("""{"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []}""")!.AsObject()));
        Assert.Contains("kwargs[0]: must be an object", ErrorOf(Doc("punctuation:no_comma", "null")));
        Assert.Contains("instruction_id_list[0]: must be a string",
            ErrorOf(JsonNode.Parse("""{"prompt": "p", "instruction_id_list": [3], "kwargs": [{}]}""")!.AsObject()));
    }

    [Fact]
    public void NullAndFalsyKwargsAreDroppedAsLmEvalDoes()
    {
        var doc = Doc("punctuation:no_comma", """{"num_words": null, "relation": "", "keywords": [], "frequency": 0, "x": false}""");
        var r = IfEvalScorer.Score(doc, "No commas", "d");
        Assert.True(r.PromptLevelStrict);
        Assert.Equal(new[] { true }, r.InstLevelLoose);
    }

    [Fact]
    public void ADocumentBuiltInCodeScoresLikeAParsedOne()
    {
        var doc = new JsonObject
        {
            ["prompt"] = "p",
            ["instruction_id_list"] = new JsonArray("length_constraints:number_words", "keywords:existence"),
            ["kwargs"] = new JsonArray(
                new JsonObject { ["num_words"] = JsonValue.Create(3L), ["relation"] = "at least", ["keywords"] = null },
                new JsonObject { ["keywords"] = new JsonArray("cat"), ["num_words"] = JsonValue.Create(0) }),
        };
        var r = IfEvalScorer.Score(doc, "A cat sat here.", "d");
        Assert.Equal(new[] { true, true }, r.InstLevelStrict);
        doc["kwargs"]![0]!["num_words"] = JsonValue.Create(2.5);
        Assert.Contains("kwargs[0].num_words: must be an integer", Assert.Throws<InputError>(() => IfEvalScorer.Score(doc, "x", "d")).Message);
    }

    [Fact]
    public void AnEmptyInstructionListFollowsEverything()
    {
        var r = IfEvalScorer.Score(JsonNode.Parse("""{"prompt": "p", "instruction_id_list": [], "kwargs": []}""")!.AsObject(), "x", "d");
        Assert.True(r.PromptLevelStrict && r.PromptLevelLoose);
        Assert.Empty(r.InstLevelStrict);
    }

    [Theory]
    [InlineData("İ", "i\u0307")]
    [InlineData("ΟΔΟΣ", "οδο\u03c2")]
    [InlineData("Σ", "σ")]
    [InlineData("ΣΑ", "σα")]
    [InlineData("ABC-Σ.", "abc-σ.")]
    public void LowerFollowsPython(string s, string expected) => Assert.Equal(expected, PostTrain.Evaluation.PyString.Lower(s));

    [Theory]
    [InlineData("HELLO 123", true, false)]
    [InlineData("123", false, false)]
    [InlineData("Ⅻ ⓐ", false, false)]
    [InlineData("Ⅻ", true, false)]
    [InlineData("ⓐbc", false, true)]
    [InlineData("ǅ", false, false)]
    [InlineData("hello ª", false, true)]
    public void IsUpperAndIsLowerFollowPython(string s, bool upper, bool lower)
    {
        Assert.Equal(upper, PyText.IsUpper(s));
        Assert.Equal(lower, PyText.IsLower(s));
    }

    [Theory]
    [InlineData("\x1c x \x1f", "x")]
    [InlineData("\u00a0\u2003x\u3000", "x")]
    [InlineData("\u200bx", "\u200bx")]
    public void StripUsesPythonsWhitespace(string s, string expected) => Assert.Equal(expected, PostTrain.Evaluation.PyString.Strip(s));

    [Theory]
    [InlineData("{}", true)]
    [InlineData("[1, -0.5e-3, \"\\ud800\", null, true, false, NaN, Infinity, -Infinity]", true)]
    [InlineData("{\"a\": 1, \"a\": 2}", true)]
    [InlineData("123456789012345678901234567890", true)]
    [InlineData("\"s\"", true)]
    [InlineData("", false)]
    [InlineData("01", false)]
    [InlineData("1.", false)]
    [InlineData("1e", false)]
    [InlineData("-", false)]
    [InlineData("[1,]", false)]
    [InlineData("{\"a\" 1}", false)]
    [InlineData("{a: 1}", false)]
    [InlineData("\"\\x\"", false)]
    [InlineData("\"\\u12g4\"", false)]
    [InlineData("nan", false)]
    [InlineData("[1] x", false)]
    [InlineData("\"a\u0001\"", false)]
    public void JsonValidityFollowsPythonsJsonLoads(string s, bool valid) => Assert.Equal(valid, PyJson.IsValid(s));

    [Fact]
    public void VeryDeepJsonIsRejectedWithoutOverflowingTheStack()
    {
        Assert.False(PyJson.IsValid(new string('[', 100_000) + new string(']', 100_000)));
        Assert.True(PyJson.IsValid(new string('[', 500) + new string(']', 500)));
    }

    [Theory]
    [InlineData("The quick brown fox jumps over the lazy dog and runs into the forest.", "en")]
    [InlineData("Het is een mooie dag en ik ga naar de markt met mijn vrienden.", "nl")]
    [InlineData("Jeg har ikke tid i dag, men vi kan ses i morgen hvis du vil.", "no")]
    [InlineData("Bu sabah çok erken kalktım ve işe gitmeden önce kahve içtim.", "tr")]
    [InlineData("Это ответ, полностью написанный на русском языке для вас.", "ru")]
    [InlineData("这是一个完全用中文写的答案。", "zh-cn")]
    [InlineData("這是一個完全用中文寫的答案。", "zh-tw")]
    [InlineData("Γεια σου, τι κάνεις σήμερα;", "el")]
    [InlineData("12345 !!! https://example.com/a a@b.com", null)]
    public void LanguageDetectorOnClearText(string text, string? expected) =>
        Assert.Equal(expected, LanguageDetector.Detect(text));
}
