using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace PostTrain.Data;

/// <summary>
/// The lines of a UTF-8 text file, numbered from 1, for every JSON Lines reader. A UTF-8 byte
/// order mark at the start of the file is skipped silently (as .NET, jq and Python's utf-8-sig
/// do; Windows tools write one); CRLF line ends are accepted (the "\r" is dropped, and JSON counts
/// it as whitespace anyway). Bytes that are not UTF-8 are an error naming the file, line and
/// byte, never replaced silently with U+FFFD.
/// </summary>
public static class TextLines
{
    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static bool HasBom(ReadOnlySpan<byte> bytes) => bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF;

    public static IEnumerable<(long Number, string Text)> Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var chunk = new byte[1 << 16];
        var line = new ArrayBufferWriter<byte>();
        long number = 0;
        bool first = true;
        int n;
        while ((n = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            int pos = 0;
            while (pos < n)
            {
                int nl = Array.IndexOf(chunk, (byte)'\n', pos, n - pos);
                if (nl < 0)
                {
                    line.Write(chunk.AsSpan(pos, n - pos));
                    break;
                }
                line.Write(chunk.AsSpan(pos, nl - pos));
                pos = nl + 1;
                yield return (++number, Decode(path, number, line.WrittenSpan, ref first));
                line.ResetWrittenCount();
            }
        }
        if (line.WrittenCount > 0) yield return (++number, Decode(path, number, line.WrittenSpan, ref first));
    }

    static string Decode(string path, long number, ReadOnlySpan<byte> bytes, ref bool first)
    {
        if (first && HasBom(bytes)) bytes = bytes[3..];
        first = false;
        if (bytes.Length > 0 && bytes[^1] == '\r') bytes = bytes[..^1];
        if (FirstInvalidUtf8(bytes) is int bad and >= 0)
            throw new InputError($"{path}:{number}: not UTF-8: byte 0x{bytes[bad]:X2} at byte {bad + 1} of the line (save the file as UTF-8)");
        return Strict.GetString(bytes);
    }

    /// <summary>The offset of the first byte that does not belong to valid UTF-8, or -1.</summary>
    public static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes)) return -1;
        var chars = ArrayPool<char>.Shared.Rent(bytes.Length);
        try
        {
            Utf8.ToUtf16(bytes, chars, out int read, out _, replaceInvalidSequences: false);
            return Math.Min(read, bytes.Length - 1);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }
}
