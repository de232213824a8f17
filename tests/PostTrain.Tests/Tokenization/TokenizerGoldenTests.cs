using System.Text.Json;
using PostTrain.Tokenization;

namespace PostTrain.Tests.Tokenization;

/// <summary>Every golden string (made by Hugging Face tokenizers, see tests/reference/tokenizer_goldens.mjs) must match exactly.</summary>
public sealed class TokenizerGoldenTests(TokenizerFixture fx) : IClassFixture<TokenizerFixture>
{
    sealed record Case(string text, int[] ids, string[] tokens, int[][] offsets, int[] ids_special, int[][] offsets_special, string decoded, string decoded_skip);
    sealed record DecodeCase(int[] ids, string text, string text_skip);
    sealed record Goldens(string model, int vocab_size, Case[] cases, DecodeCase[] decode_cases);

    static Goldens Load(string model) =>
        JsonSerializer.Deserialize<Goldens>(File.ReadAllText(Path.Combine(TokenizerFixture.FixtureDir, $"goldens.{model}.json")))!;

    static string Show(string s) => JsonSerializer.Serialize(s);

    public static TheoryData<string> Models => new(TokenizerFixture.Models);

    [Theory, MemberData(nameof(Models))]
    public void EncodeMatchesHuggingFace(string model)
    {
        var tok = fx.Get(model);
        var g = Load(model);
        Assert.True(g.cases.Length > 400);
        var failures = new List<string>();
        foreach (var c in g.cases)
        {
            var ids = tok.Encode(c.text);
            if (!ids.SequenceEqual(c.ids)) { failures.Add($"ids {Show(c.text)}: got [{string.Join(",", ids)}] want [{string.Join(",", c.ids)}]"); continue; }
            var tokens = ids.Select(i => tok.IdToToken(i)).ToArray();
            if (!tokens.SequenceEqual(c.tokens)) failures.Add($"tokens {Show(c.text)}");
            var ws = tok.EncodeWithOffsets(c.text);
            if (!ws.Ids.SequenceEqual(c.ids)) failures.Add($"ids (with offsets) {Show(c.text)}");
            var offs = ws.Offsets.Select(o => $"{o.Start}-{o.End}");
            var want = c.offsets.Select(o => $"{o[0]}-{o[1]}");
            if (!offs.SequenceEqual(want)) failures.Add($"offsets {Show(c.text)}: got {string.Join(",", offs)} want {string.Join(",", want)}");
            var special = tok.EncodeWithOffsets(c.text, addSpecialTokens: true);
            if (!special.Ids.SequenceEqual(c.ids_special)) failures.Add($"ids_special {Show(c.text)}");
            if (!tok.Encode(c.text, addSpecialTokens: true).SequenceEqual(c.ids_special)) failures.Add($"Encode special {Show(c.text)}");
            if (!special.Offsets.Select(o => $"{o.Start}-{o.End}").SequenceEqual(c.offsets_special.Select(o => $"{o[0]}-{o[1]}")))
                failures.Add($"offsets_special {Show(c.text)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {g.cases.Length} failed:\n" + string.Join("\n", failures.Take(30)));
    }

    [Theory, MemberData(nameof(Models))]
    public void DecodeMatchesHuggingFace(string model)
    {
        var tok = fx.Get(model);
        var g = Load(model);
        Assert.Equal(g.vocab_size, tok.VocabSize);
        var failures = new List<string>();
        foreach (var c in g.cases)
        {
            var d = tok.Decode(c.ids_special);
            if (d != c.decoded) failures.Add($"decode {Show(c.text)}: got {Show(d)} want {Show(c.decoded)}");
            var ds = tok.Decode(c.ids_special, skipSpecialTokens: true);
            if (ds != c.decoded_skip) failures.Add($"decode skip {Show(c.text)}: got {Show(ds)} want {Show(c.decoded_skip)}");
        }
        foreach (var c in g.decode_cases)
        {
            var d = tok.Decode(c.ids);
            if (d != c.text) failures.Add($"decode [{string.Join(",", c.ids)}]: got {Show(d)} want {Show(c.text)}");
            var ds = tok.Decode(c.ids, skipSpecialTokens: true);
            if (ds != c.text_skip) failures.Add($"decode skip [{string.Join(",", c.ids)}]: got {Show(ds)} want {Show(c.text_skip)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} failed:\n" + string.Join("\n", failures.Take(30)));
    }
}
