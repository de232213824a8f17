using System.Text.RegularExpressions;
using PostTrain.Evaluation;

namespace PostTrain.Tests.Evaluation;

/// <summary>The Python-to-.NET pattern rewrite; the goldens in FilterTests check it against Python's re.</summary>
public class PythonRegexTests
{
    static string[] FindAll(string pattern, string input) =>
        new PythonRegex(pattern).FindAll(input).Select(m => string.Join("|", m)).ToArray();

    [Fact]
    public void NamedGroupsAreNumberedLeftToRight()
    {
        var rx = new PythonRegex(@"(?P<a>x)(y)(?P<b>z)");
        Assert.Equal(3, rx.GroupCount);
        Assert.Equal(["x|y|z"], FindAll(@"(?P<a>x)(y)(?P<b>z)", "xyz"));
        Assert.Equal(["a"], FindAll(@"(?P<c>a)(?P=c)", "aab"));  // one group: findall gives the group
        Assert.Equal(["b|b"], FindAll(@"(?P<c>b)\1(?P<d>(?P=c))", "abbb"));
    }

    [Fact]
    public void Anchors()
    {
        Assert.Equal(["1"], FindAll(@"\d$", "1\n"));
        Assert.Empty(FindAll(@"\d\Z", "1\n"));
        Assert.Equal(["1"], FindAll(@"\d\Z", "1"));
    }

    [Fact]
    public void FindallRetriesAfterAnEmptyMatch()
    {
        Assert.Equal(["", "foo", "bar"], FindAll(@"^|\w+", "foo bar"));
        Assert.Equal(["", "", ""], FindAll("x*", "\U0001F600\U0001F600")); // no position between a pair's halves
        Assert.Equal("bar", new PythonRegex(@"^|foo ").RemoveAll("foo bar"));
    }

    [Fact]
    public void PythonSyntaxErrors()
    {
        Assert.Equal("bad escape \\e at position 0", Assert.Throws<PythonRegexException>(() => new PythonRegex(@"\e")).Message);
        Assert.Equal("unknown extension ?<n at position 1",
            Assert.Throws<PythonRegexException>(() => new PythonRegex(@"(?<n>a)")).Message);
        Assert.Throws<PythonRegexException>(() => new PythonRegex(@"\N{EM DASH}"));
    }

    [Fact]
    public void CatastrophicPatternTimesOut()
    {
        var rx = new PythonRegex(@"(a+)+$", TimeSpan.FromMilliseconds(20));
        Assert.Throws<RegexMatchTimeoutException>(() => rx.FindAll(new string('a', 40) + "b"));
    }

    [Fact]
    public void EscapeIsReEscape()
    {
        Assert.Equal(@"a\.b\ \#\-c_d", PythonRegex.Escape("a.b #-c_d"));
        Assert.Equal(["a.b #-c"], FindAll(PythonRegex.Escape("a.b #-c"), "xa.b #-c"));
    }
}
