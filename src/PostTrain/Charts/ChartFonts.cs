using ScottPlot;
using SkiaSharp;

namespace PostTrain.Charts;

/// <summary>
/// The font every chart draws its text with: DejaVu Sans, embedded in this assembly.
/// </summary>
/// <remarks>
/// ScottPlot asks SkiaSharp for system fonts by name. The Linux SkiaSharp library it brings
/// (NativeAssets.Linux.NoDependencies) looks for them in /usr/share/fonts, and where none are
/// installed (a bare container, a fresh CI machine) every label silently draws nothing. So the
/// fonts ship inside PostTrain.dll and a ScottPlot font resolver hands them out under a family
/// name no system font has, which also keeps ScottPlot's typeface cache from holding a system
/// font under that name.
/// </remarks>
public static class ChartFonts
{
    /// <summary>The family name charts set on their labels.</summary>
    public const string Family = "PostTrain DejaVu Sans";

    static readonly Lazy<SKTypeface> regular = new(() => Load("DejaVuSans.ttf"));
    static readonly Lazy<SKTypeface> bold = new(() => Load("DejaVuSans-Bold.ttf"));
    static readonly object gate = new();
    static bool registered;

    public static SKTypeface Regular => regular.Value;
    public static SKTypeface Bold => bold.Value;

    /// <summary>Adds the embedded fonts to ScottPlot's resolvers (once per process).</summary>
    public static void Register()
    {
        lock (gate)
        {
            if (registered) return;
            Fonts.FontResolvers.Insert(0, new Resolver());
            registered = true;
        }
    }

    static SKTypeface Load(string file)
    {
        var name = $"PostTrain.Charts.Fonts.{file}";
        using var stream = typeof(ChartFonts).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"embedded font {name} is missing from the assembly");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return SKTypeface.FromData(SKData.CreateCopy(buffer.ToArray()))
            ?? throw new InvalidOperationException($"SkiaSharp could not read the embedded font {name}");
    }

    sealed class Resolver : IFontResolver
    {
        public SKTypeface? CreateTypeface(string fontName, bool isBold, bool italic) =>
            fontName == Family ? (isBold ? Bold : Regular) : null;

        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing width) =>
            CreateTypeface(fontName, weight >= FontWeight.SemiBold, slant != FontSlant.Upright);
    }
}
