using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PostTrain.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// A safetensors file: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the raw little-endian data. Reading maps the file into
/// memory and copies each tensor straight into native tensor memory: the data never passes
/// through managed arrays.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    public const int MaxHeaderBytes = 100_000_000;

    readonly MemoryMappedFile map;
    readonly MemoryMappedViewAccessor view;
    readonly long dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long dataStart,
        Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        this.map = map;
        this.view = view;
        this.dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw InputError.FileNotFound(path);
        long length = new FileInfo(path).Length;
        if (length < 8) throw new InputError($"{path}: truncated safetensors file ({length} bytes, no header)");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        try
        {
            ulong headerLength = view.ReadUInt64(0);
            // The length is the file's first 8 bytes: when it is wrong it is not printed (it may be
            // the start of some other file's text).
            if ((long)headerLength > length - 8 || headerLength > long.MaxValue)
                throw new InputError($"{path}: not a safetensors file or truncated (the header length its first 8 bytes give is larger than the file's {length} bytes)");
            if (headerLength > MaxHeaderBytes)
                throw new InputError($"{path}: not a safetensors file (the header length its first 8 bytes give is over the {MaxHeaderBytes:N0}-byte limit)");
            var header = new byte[headerLength];
            view.ReadArray(8, header, 0, header.Length);
            long dataStart = 8 + (long)headerLength;
            var (tensors, metadata) = ParseHeader(path, header, length - dataStart);
            return new SafeTensorsFile(path, map, view, dataStart, tensors, metadata);
        }
        catch
        {
            view.Dispose();
            map.Dispose();
            throw;
        }
    }

    static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(header) as JsonObject ?? throw new InputError($"{path}: safetensors header is not a JSON object");
        }
        catch (JsonException e)
        {
            // Not the parser's message: it quotes the offending bytes of the file.
            throw new InputError($"{path}: not a safetensors file (its header is not valid JSON at byte {8 + (e.BytePositionInLine ?? 0)})");
        }
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject m)
                    foreach (var (k, v) in m) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            if (node is not JsonObject o) throw new InputError($"{path}: tensor '{name}': header entry is not an object");
            try
            {
                var dtype = o["dtype"]!.GetValue<string>();
                var shape = o["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                var offsets = o["data_offsets"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                if (offsets.Length != 2) throw new FormatException();
                var info = new SafeTensorInfo(name, dtype, shape, offsets[0], offsets[1]);
                if (shape.Any(d => d < 0)) throw new FormatException();
                long expected = checked(shape.Aggregate(1L, (a, d) => checked(a * d)) * ElementSize(dtype, path, name));
                if (info.Begin < 0 || info.End < info.Begin || info.ByteLength != expected)
                    throw new InputError($"{path}: tensor '{name}': data_offsets [{info.Begin}, {info.End}] do not hold shape [{string.Join(", ", shape)}] of {dtype}");
                if (info.End > dataLength)
                    throw new InputError($"{path}: tensor '{name}': data ends at byte {info.End} but the file holds {dataLength} (truncated file?)");
                tensors[name] = info;
            }
            catch (OverflowException)
            {
                throw new InputError($"{path}: tensor '{name}': shape [{string.Join(", ", o["shape"]!.AsArray())}] is too large for any file");
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException or NullReferenceException or KeyNotFoundException)
            {
                throw new InputError($"{path}: tensor '{name}': header entry needs dtype, shape and data_offsets");
            }
        }
        return (tensors, metadata);
    }

    public static int ElementSize(string dtype, string path = "", string tensor = "") => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => throw new InputError($"{path}: tensor '{tensor}': unknown dtype '{dtype}'"),
    };

    public static ScalarType ToScalarType(string dtype, string path = "", string tensor = "") => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InputError($"{path}: tensor '{tensor}': dtype '{dtype}' is not supported"),
    };

    public static string FromScalarType(ScalarType t) => t switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {t} cannot be saved in safetensors"),
    };

    /// <summary>The tensor as stored (its file dtype), in a new CPU tensor.</summary>
    public Tensor Load(string name)
    {
        if (!Tensors.TryGetValue(name, out var info)) throw new InputError($"{Path}: no tensor '{name}'");
        var t = empty(info.Shape, ToScalarType(info.DType, Path, name));
        try
        {
            CopyInto(info, t);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>Copies a tensor's bytes into <paramref name="destination"/>, a contiguous CPU tensor of the file's dtype and shape.</summary>
    public unsafe void CopyInto(SafeTensorInfo info, Tensor destination)
    {
        byte* basePtr = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
        try
        {
            byte* src = basePtr + view.PointerOffset + dataStart + info.Begin;
            NativeMemory.CopyToTensor(src, info.ByteLength, destination);
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    public void Dispose()
    {
        view.Dispose();
        map.Dispose();
    }

    /// <summary>
    /// Writes tensors to a safetensors file, in the order given. Each tensor is written from its
    /// native memory (converted to <paramref name="dtype"/> first when it differs).
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, ScalarType? dtype = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        var meta = new JsonObject { ["format"] = "pt" };
        if (metadata is not null)
            foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            var type = dtype ?? t.dtype;
            long bytes = t.numel() * ElementSize(FromScalarType(type));
            header[name] = new JsonObject
            {
                ["dtype"] = FromScalarType(type),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var (_, t) in tensors)
        {
            using var scope = NewDisposeScope();
            var data = t.detach().to(dtype ?? t.dtype).cpu().contiguous();
            NativeMemory.WriteTensor(data, stream);
        }
    }
}

/// <summary>Copies between native tensor memory and raw bytes without managed buffers.</summary>
internal static class NativeMemory
{
    const long Chunk = 1L << 30; // Span<byte> holds at most 2 GiB: copy large tensors in row blocks

    public static unsafe void CopyToTensor(byte* src, long byteLength, Tensor destination)
    {
        if (!destination.is_contiguous()) throw new ArgumentException("destination must be contiguous");
        foreach (var (block, offset) in Blocks(destination))
        {
            using (block)
            {
                var span = block.bytes;
                new ReadOnlySpan<byte>(src + offset, span.Length).CopyTo(span);
            }
        }
    }

    public static void WriteTensor(Tensor source, Stream stream)
    {
        foreach (var (block, _) in Blocks(source))
            using (block)
                stream.Write(block.bytes);
    }

    // Views over consecutive rows, each under Chunk bytes (or one row when a row is larger).
    static IEnumerable<(Tensor Block, long ByteOffset)> Blocks(Tensor t)
    {
        long total = t.numel() * t.element_size();
        if (total <= Chunk || t.dim() == 0)
        {
            yield return (t.alias(), 0);
            yield break;
        }
        long rows = t.shape[0];
        long rowBytes = total / rows;
        if (rowBytes > Chunk) throw new NotSupportedException($"a single tensor row of {rowBytes} bytes is too large");
        long perBlock = Math.Max(1, Chunk / rowBytes);
        for (long r = 0; r < rows; r += perBlock)
        {
            long n = Math.Min(perBlock, rows - r);
            yield return (t.narrow(0, r, n), r * rowBytes);
        }
    }
}
