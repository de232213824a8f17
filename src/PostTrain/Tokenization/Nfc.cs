using System.Text;

namespace PostTrain.Tokenization;

/// <summary>
/// Unicode NFC with character alignments, implemented by hand because .NET's
/// <see cref="string.Normalize()"/> is a no-op under InvariantGlobalization (which this solution
/// uses) and gives no alignments. Alignments follow Hugging Face's NormalizedString (see Normalize).
/// </summary>
internal static partial class Nfc
{
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    static readonly Dictionary<int, byte> Ccc = BuildCcc();
    static readonly Dictionary<int, int[]> Decomp = BuildDecomp();
    static readonly Dictionary<long, int> Pairs = BuildPairs();

    static Dictionary<int, byte> BuildCcc()
    {
        var d = new Dictionary<int, byte>(CccData.Length / 2);
        for (int i = 0; i < CccData.Length; i += 2) d[CccData[i]] = (byte)CccData[i + 1];
        return d;
    }

    static Dictionary<int, int[]> BuildDecomp()
    {
        var d = new Dictionary<int, int[]>();
        for (int i = 0; i < DecompData.Length;)
        {
            int cp = DecompData[i], n = DecompData[i + 1];
            d[cp] = DecompData.Slice(i + 2, n).ToArray();
            i += 2 + n;
        }
        return d;
    }

    static Dictionary<long, int> BuildPairs()
    {
        var d = new Dictionary<long, int>(PairData.Length / 3);
        for (int i = 0; i < PairData.Length; i += 3)
            d[((long)PairData[i] << 32) | (uint)PairData[i + 1]] = PairData[i + 2];
        return d;
    }

    static int GetCcc(int cp) => cp < 0x300 ? 0 : Ccc.TryGetValue(cp, out var c) ? c : 0;

    // BMP: bit 7 = NFC_QC not Yes, low 7 bits unused; combining classes in BmpCcc.
    static readonly byte[] BmpNotYes = new byte[65536];
    static readonly byte[] BmpCcc = new byte[65536];
    static readonly HashSet<int> AstralNotYes = [];

    static Nfc()
    {
        foreach (var cp in NotYesData)
        {
            if (cp < 0x10000) BmpNotYes[cp] = 1;
            else AstralNotYes.Add(cp);
        }
        foreach (var (cp, c) in Ccc)
            if (cp < 0x10000) BmpCcc[cp] = c;
    }

    /// <summary>
    /// NFC quick check (UAX #15): true when <paramref name="s"/> is certainly NFC already. Text with
    /// every char below U+0300 is; otherwise a char that is not NFC_QC=Yes or combining classes out
    /// of order send the text to the full algorithm.
    /// </summary>
    public static bool IsTriviallyNfc(ReadOnlySpan<char> s)
    {
        int first = s.IndexOfAnyInRange('\u0300', '\uFFFF');
        if (first < 0) return true;
        int lastCcc = 0;
        for (int i = first; i < s.Length; i++)
        {
            char c = s[i];
            if (c < 0x300) { lastCcc = 0; continue; }
            int cp = c, cc;
            bool notYes;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                cp = char.ConvertToUtf32(c, s[++i]);
                cc = GetCcc(cp);
                notYes = AstralNotYes.Contains(cp);
            }
            else
            {
                cc = BmpCcc[c];
                notYes = BmpNotYes[c] != 0;
            }
            if (notYes || (cc != 0 && lastCcc > cc)) return false;
            lastCcc = cc;
        }
        return true;
    }

    /// <summary>
    /// Normalizes <paramref name="s"/> to NFC. When it changes, returns the new string and for each
    /// output UTF-16 unit the [start, end) UTF-16 range in <paramref name="s"/> it is aligned to.
    /// Returns null when <paramref name="s"/> is already NFC.
    /// </summary>
    /// <remarks>
    /// Mirrors HF's unicode-normalization-alignments: decomposition tags each char with a change
    /// (0 for the first char of a decomposition, +1 for the others), canonical reordering carries the
    /// changes, a composite gets composee.change + ch.change - 1, and NormalizedString.transform then
    /// consumes the original chars positionally (a change of -k consumes k+1 chars, +1 none).
    /// </remarks>
    public static string? Normalize(string s, out int[]? alignStart, out int[]? alignEnd)
    {
        alignStart = alignEnd = null;
        if (IsTriviallyNfc(s)) return null;
        var orig = new List<(int Start, int End)>(s.Length);
        var dec = new List<int>(s.Length + 8);
        var chg = new List<int>(s.Length + 8);
        var tmp = new List<int>(4);
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out var r, out int used);
            orig.Add((i, i + used));
            i += used;
            tmp.Clear();
            DecomposeInto(r.Value, tmp);
            for (int k = 0; k < tmp.Count; k++) { dec.Add(tmp[k]); chg.Add(k == 0 ? 0 : 1); }
        }
        Reorder(dec, chg);
        var outCp = new List<int>(dec.Count);
        var outChg = new List<int>(dec.Count);
        Recompose(dec, chg, outCp, outChg);

        bool same = outCp.Count == orig.Count;
        if (same)
        {
            for (int i = 0, k = 0; k < outCp.Count; k++)
            {
                if (outCp[k] != s.ConvertToUtf32Safe(i)) { same = false; break; }
                i = orig[k].End;
            }
        }
        if (same) return null;

        var sb = new StringBuilder(s.Length + 8);
        var st = new List<int>(s.Length + 8);
        var en = new List<int>(s.Length + 8);
        int consumed = 0;
        for (int k = 0; k < outCp.Count; k++)
        {
            (int Start, int End) align;
            int change = outChg[k];
            if (change > 0) align = consumed == 0 ? (0, 0) : orig[consumed - 1];
            else
            {
                align = consumed < orig.Count ? orig[consumed] : orig[^1];
                consumed += 1 - change;
            }
            var rr = new Rune(outCp[k]);
            sb.Append(rr.ToString());
            for (int u = 0; u < rr.Utf16SequenceLength; u++) { st.Add(align.Start); en.Add(align.End); }
        }
        alignStart = [.. st];
        alignEnd = [.. en];
        return sb.ToString();
    }

    static int ConvertToUtf32Safe(this string s, int i) =>
        char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? char.ConvertToUtf32(s[i], s[i + 1])
        : char.IsSurrogate(s[i]) ? 0xFFFD : s[i];

    /// <summary>The recomposition state machine of unicode-normalization(-alignments), with changes.</summary>
    static void Recompose(List<int> cps, List<int> chg, List<int> outCp, List<int> outChg)
    {
        var buffer = new List<(int Cp, int Chg)>();
        (int Cp, int Chg)? composee = null;
        int lastCcc = -1; // -1: None
        void Emit((int Cp, int Chg) x) { outCp.Add(x.Cp); outChg.Add(x.Chg); }
        void Purge() { foreach (var b in buffer) Emit(b); buffer.Clear(); }
        for (int i = 0; i < cps.Count; i++)
        {
            int ch = cps[i], change = chg[i], cls = GetCcc(ch);
            if (composee is not { } k)
            {
                if (cls != 0) { Emit((ch, change)); continue; }
                composee = (ch, change);
                continue;
            }
            if (lastCcc < 0)
            {
                int r = ComposePair(k.Cp, ch);
                if (r >= 0) { composee = (r, k.Chg + change - 1); continue; }
                if (cls == 0) { composee = (ch, change); Emit(k); continue; }
                buffer.Add((ch, change));
                lastCcc = cls;
            }
            else
            {
                if (lastCcc >= cls)
                {
                    if (cls == 0)
                    {
                        composee = (ch, change);
                        lastCcc = -1;
                        Emit(k);
                        Purge();
                        continue;
                    }
                    buffer.Add((ch, change));
                    lastCcc = cls;
                    continue;
                }
                int r = ComposePair(k.Cp, ch);
                if (r >= 0) { composee = (r, k.Chg + change - 1); continue; }
                buffer.Add((ch, change));
                lastCcc = cls;
            }
        }
        if (composee is { } last) Emit(last);
        Purge();
    }

    static void DecomposeInto(int cp, List<int> dst)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int si = cp - SBase;
            dst.Add(LBase + si / NCount);
            dst.Add(VBase + si % NCount / TCount);
            if (si % TCount != 0) dst.Add(TBase + si % TCount);
        }
        else if (cp >= 0xC0 && Decomp.TryGetValue(cp, out var d)) dst.AddRange(d);
        else dst.Add(cp);
    }

    static void Reorder(List<int> cps, List<int> chg)
    {
        // Stable insertion sort of each run of non-starters by combining class, carrying changes.
        for (int i = 1; i < cps.Count; i++)
        {
            int c = cps[i], d = chg[i], cc = GetCcc(c);
            if (cc == 0) continue;
            int j = i - 1;
            while (j >= 0 && GetCcc(cps[j]) > cc) { cps[j + 1] = cps[j]; chg[j + 1] = chg[j]; j--; }
            cps[j + 1] = c;
            chg[j + 1] = d;
        }
    }

    static int ComposePair(int a, int b)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
            return a + (b - TBase);
        return Pairs.TryGetValue(((long)a << 32) | (uint)b, out var c) ? c : -1;
    }
}
