using Parquet.Serialization;
using PostTrain.Data;

namespace PostTrain.Tests.Data;

public class DatasetReaderTests
{
    [Fact]
    public void JsonLinesKeepTheirLineNumbers()
    {
        var path = Path.Combine(TestModels.TempDir(), "d.jsonl");
        File.WriteAllText(path, "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n");
        var records = DatasetReader.Read(path).ToList();
        Assert.Equal([1L, 3L], records.Select(r => r.Line));
        Assert.Equal($"{path}:3", records[1].Location);
    }

    [Fact]
    public void JsonArrayRecordsKnowTheLineTheyStartOn()
    {
        var path = Path.Combine(TestModels.TempDir(), "d.json");
        File.WriteAllText(path, "[\n  {\"text\": \"a\"},\n  {\n    \"text\": \"b\"\n  }\n]\n");
        var records = DatasetReader.Read(path).ToList();
        Assert.Equal([2L, 3L], records.Select(r => r.Line));
        Assert.Equal("b", records[1].Value["text"]!.GetValue<string>());
    }

    [Fact]
    public void JsonFileWithOneObjectPerLineIsJsonLines()
    {
        var path = Path.Combine(TestModels.TempDir(), "d.json");
        File.WriteAllText(path, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
        Assert.Equal(2, DatasetReader.Read(path).Count());
    }

    [Fact]
    public void InvalidJsonNamesTheLine()
    {
        var path = Path.Combine(TestModels.TempDir(), "d.jsonl");
        File.WriteAllText(path, "{\"text\": \"a\"}\n{\"text\": \n");
        var e = Assert.Throws<InputError>(() => DatasetReader.Read(path).ToList());
        Assert.StartsWith($"{path}:2: not valid JSON", e.Message);
    }

    public sealed class Message
    {
        public string? role { get; set; }
        public string? content { get; set; }
    }

    public sealed class ChatRow
    {
        public List<Message>? messages { get; set; }
        public int id { get; set; }
    }

    [Fact]
    public async Task ParquetRowsWithNestedMessages()
    {
        var dir = TestModels.TempDir();
        var rows = Enumerable.Range(0, 5).Select(i => new ChatRow
        {
            id = i,
            messages = [new Message { role = "user", content = $"q{i}" }, new Message { role = "assistant", content = $"a{i}" }],
        }).ToList();
        await ParquetSerializer.SerializeAsync(rows.Take(3), Path.Combine(dir, "train-00000.parquet"));
        await ParquetSerializer.SerializeAsync(rows.Skip(3), Path.Combine(dir, "train-00001.parquet"));
        var records = DatasetReader.Read(dir).ToList(); // a directory of shards, in name order
        Assert.Equal(5, records.Count);
        Assert.Equal("a4", records[4].Value["messages"]![1]!["content"]!.GetValue<string>());
        Assert.Equal(4L, records[4].Value["id"]!.GetValue<long>());
        Assert.True(records[4].IsRow);
        Assert.EndsWith("train-00001.parquet: row 2", records[4].Location);
        var dataset = SftDataset.Load(dir);
        Assert.Equal(new DatasetFormat(DatasetKind.LanguageModeling, true), dataset.Format);
    }

    public sealed class BinaryRow
    {
        public byte[]? prompt { get; set; }
    }

    [Fact]
    public async Task ParquetBinaryValuesAreReadAsUtf8AndBadBytesNameTheRow()
    {
        var dir = TestModels.TempDir();
        var good = Path.Combine(dir, "good.parquet");
        await ParquetSerializer.SerializeAsync(new[] { new BinaryRow { prompt = System.Text.Encoding.UTF8.GetBytes("héllo") } }, good);
        Assert.Equal("héllo", DatasetReader.Read(good).Single().Value["prompt"]!.GetValue<string>());
        var bad = Path.Combine(dir, "bad.parquet");
        await ParquetSerializer.SerializeAsync(new[] { new BinaryRow { prompt = [0x61] }, new BinaryRow { prompt = [0x61, 0xFF, 0x62] } }, bad);
        var e = Assert.Throws<InputError>(() => DatasetReader.Read(bad).ToList());
        Assert.Equal($"{bad}: row 2: a binary value is not UTF-8 text", e.Message);
    }

    [Fact]
    public void MissingPathAndEmptyDirectoryAreErrors()
    {
        var dir = TestModels.TempDir();
        Assert.Contains("no .jsonl, .json or .parquet files", Assert.Throws<InputError>(() => DatasetReader.Read(dir)).Message);
        Assert.Contains("file not found", Assert.Throws<InputError>(() => DatasetReader.Read(Path.Combine(dir, "x.jsonl"))).Message);
    }
}
