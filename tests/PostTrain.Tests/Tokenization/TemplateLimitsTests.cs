using System.Diagnostics;
using PostTrain.Tokenization;
using PostTrain.Tokenization.Jinja;
using Xunit;

namespace PostTrain.Tests.Tokenization;

/// <summary>
/// A template cannot hang or exhaust the machine: each limit of <see cref="JinjaLimits"/> ends the
/// render (or the parse) with a <see cref="TemplateError"/> naming the template and line, quickly.
/// </summary>
public class TemplateLimitsTests
{
    static string Render(string source) =>
        ChatTemplate.Parse(source, "t.jinja").Render(new Dictionary<string, object?>()).Text;

    static TemplateError Fails(string source, string expected, int line = 1)
    {
        var watch = Stopwatch.StartNew();
        var e = Assert.ThrowsAny<TemplateError>(() => Render(source));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
        Assert.Equal("t.jinja", e.SourceName);
        Assert.Equal(line, e.Line);
        Assert.Contains(expected, e.Message);
        return e;
    }

    [Fact]
    public void NestedLoopsOfAHundredThousandEachStopAtTheIterationLimit() =>
        Fails("x\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "more than 1,000,000 loop iterations", line: 2);

    [Fact]
    public void AStringRepeatedTenBillionTimesIsRefusedBeforeAllocating() =>
        Fails("{{ 'x' * 10**10 }}", "would hold 10,000,000,000 characters");

    [Fact]
    public void AListRepeatedTenBillionTimesIsRefusedBeforeAllocating() =>
        Fails("{% set l = [0] * 10**10 %}", "would hold 10,000,000,000 items");

    [Fact]
    public void DoublingAStringByConcatenationStopsAtTheSizeLimit() =>
        Fails("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "more than the limit of 16,777,216");

    [Fact]
    public void TildeConcatenationIsLimitedToo() =>
        Fails("{% set s = 'x' * 16000000 %}{{ s ~ s }}", "characters, more than the limit");

    [Fact]
    public void ReplacementsAndPaddingAreLimitedToo()
    {
        Fails("{% set s = 'x' * 1000000 %}{{ s | replace('x', 'yyyyyyyyyyyyyyyyyyyy') }}", "would hold 20,000,000 characters");
        Fails("{{ 'ab'.replace('', 'z' * 10000000) }}", "would hold 30,000,002 characters");
        Fails("{{ 'a'.ljust(10**10) }}", "would hold 10,000,000,000 characters");
        Fails("{{ 'a' | center(10**10) }}", "would hold 10,000,000,000 characters");
        Assert.Equal("xyyx|  a  ", Render("{{ 'xax' | replace('a', 'yy') }}|{{ 'a' | center(5) }}"));
    }

    [Fact]
    public void JoinFormatAndTojsonAreLimitedBeforeTheyBuildTheirText()
    {
        // A list of a few long strings is small; what join, % / format and tojson make of it is not.
        Fails("{% set s = 'x' * 10000000 %}{{ [s, s, s] | join(s) }}", "would hold 50,000,000 characters");
        Fails("{% set s = 'x' * 10000000 %}{{ '-'.join([s, s]) }}", "would hold 20,000,001 characters");
        Fails("{% set s = 'x' * 10000000 %}{{ '%s%s' % (s, s) }}", "would hold 20,000,000 characters");
        Fails("{% set s = 'x' * 10000000 %}{{ '{}{}'.format(s, s) }}", "would hold 20,000,000 characters");
        Fails("{% set s = 'x' * 10000000 %}{{ [s, s, s] | tojson }}", "characters, more than the limit");
        // A list cannot be made to hold itself: mutating methods are unsafe in the sandbox, as jinja2's.
        Fails("{% set l = [] %}{% set _ = l.append(l) %}{{ l | tojson }}", "unsafe");
        Assert.Equal("a-b|k=3|x1|[\"a\", 1]", Render("{{ ['a', 'b'] | join('-') }}|{{ '%s=%d' % ('k', 3) }}|{{ 'x{}'.format(1) }}|{{ ['a', 1] | tojson }}"));
    }

    [Fact]
    public void ManyStringsUnderTheSizeLimitCannotAddUpToGigabytes()
    {
        // Each macro call's output is 10M characters, under the per-string limit; thirty of them are 300M.
        Fails("{% macro m() %}{{ 'x' * 10000000 }}{% endmacro %}{% set l = [" + string.Join(", ", Enumerable.Repeat("m()", 30)) + "] %}{{ l | length }}",
            "builds more than 268,435,456 characters in all");
        Fails("{% set s = 'x' * 16000000 %}{% set ns = namespace(l=[]) %}{% for i in range(20) %}{% set ns.l = ns.l + [s ~ i] %}{% endfor %}",
            "builds more than 268,435,456 characters in all");
        // Ordinary templates build a little and render as before, twice in a row.
        Assert.Equal("xx|3", Render("{{ 'x' * 2 }}|{{ ['a', 'b', 'c'] | length }}"));
        Assert.Equal("xx|3", Render("{{ 'x' * 2 }}|{{ ['a', 'b', 'c'] | length }}"));
    }

    [Fact]
    public void OutputLongerThanTheLimitStops() =>
        Fails("{% set s = 'x' * 10000000 %}{% for i in range(3) %}{{ s }}{% endfor %}", "output would exceed 16,777,216 characters");

    [Fact]
    public void ARecursiveMacroStopsAtTheDepthLimit() =>
        Fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}", "calls nest more than 500 deep");

    [Fact]
    public void MacroRecursionWithinTheLimitRenders() =>
        Assert.Equal("100", Render("{% macro f(n) %}{% if n < 100 %}{{ f(n + 1) }}{% else %}{{ n }}{% endif %}{% endmacro %}{{ f(0) }}"));

    [Fact]
    public void TwentyThousandNestedParenthesesAreASyntaxError()
    {
        var e = Assert.Throws<TemplateSyntaxError>(() => ChatTemplate.Parse("{{ " + new string('(', 20000) + "1" + new string(')', 20000) + " }}", "t.jinja"));
        Assert.Contains("nest more than 500 deep", e.Message);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void DeepUnaryAndNotChainsAndNestedBlocksAreSyntaxErrors()
    {
        Assert.Throws<TemplateSyntaxError>(() => ChatTemplate.Parse("{{ " + string.Concat(Enumerable.Repeat("not ", 20000)) + "1 }}", "t.jinja"));
        Assert.Throws<TemplateSyntaxError>(() => ChatTemplate.Parse("{{ " + new string('-', 20000) + "1 }}", "t.jinja"));
        Assert.Throws<TemplateSyntaxError>(() => ChatTemplate.Parse(
            string.Concat(Enumerable.Repeat("{% if true %}", 20000)) + string.Concat(Enumerable.Repeat("{% endif %}", 20000)), "t.jinja"));
    }

    [Fact]
    public void NestingWithinTheLimitParsesAndRenders() =>
        Assert.Equal("1", Render("{{ " + new string('(', 200) + "1" + new string(')', 200) + " }}"));

    [Fact]
    public void ALongFlatChainOfOperatorsIsAnErrorNotAStackOverflow()
    {
        // The parser builds a + a + ... iteratively; evaluating it recurses once per term.
        var source = "{{ " + string.Join(" + ", Enumerable.Repeat("1", 200_000)) + " }}";
        var e = Assert.ThrowsAny<TemplateError>(() => Render(source));
        Assert.Contains("nests too deeply", e.Message);
    }

    [Fact]
    public void PowersOfOneDoNotLoopOverTheExponent() =>
        Assert.Equal("1 1024", Render("{{ 1 ** 10**18 }} {{ 2 ** 10 }}"));
}
