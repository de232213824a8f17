using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// A micro-batch as the model sees it, for every method: right-padded rows of token ids (with
/// position ids for packed rows) and the scored tokens (SFT's trained tokens, DPO's and GRPO's
/// completion tokens), each as its row, the position whose hidden state predicts it, and the
/// token. Right padding: real tokens never attend to the pads after them.
/// </summary>
public sealed class TokenRows
{
    public required Tensor InputIds { get; init; }
    /// <summary>Null unless some row brings its own positions (packing); pads then count on from the row's end.</summary>
    public Tensor? PositionIds { get; init; }
    /// <summary>Per scored token, in row order then position order: its row.</summary>
    public required Tensor RowIndex { get; init; }
    /// <summary>Per scored token: the position whose hidden state predicts it (its own position − 1).</summary>
    public required Tensor ColIndex { get; init; }
    public required Tensor Targets { get; init; }
    /// <summary>Per scored token, on the host: its row.</summary>
    public required int[] RowOfToken { get; init; }
    public required int Rows { get; init; }
    public int Tokens => RowOfToken.Length;

    /// <param name="ids">Each row's tokens.</param>
    /// <param name="scored">Whether token t of row r is scored; only t ≥ 1 can be (the first token has no context).</param>
    /// <param name="positions">Per row its position ids, or null for 0, 1, ...; null when no row is packed.</param>
    public static TokenRows Build(IReadOnlyList<int[]> ids, Func<int, int, bool> scored, IReadOnlyList<int[]?>? positions = null)
    {
        int rows = ids.Count, width = ids.Max(r => r.Length);
        bool packed = positions is not null && positions.Any(p => p is not null);
        var flat = new long[rows * width];
        var pos = packed ? new long[rows * width] : null;
        var rowOfToken = new List<int>();
        var colIndex = new List<long>();
        var targets = new List<long>();
        for (int r = 0; r < rows; r++)
        {
            var row = ids[r];
            for (int t = 0; t < width; t++)
            {
                flat[r * width + t] = t < row.Length ? row[t] : 0;
                if (pos is not null) pos[r * width + t] = t < row.Length ? (positions![r]?[t] ?? t) : t - row.Length;
                if (t >= 1 && t < row.Length && scored(r, t))
                {
                    rowOfToken.Add(r);
                    colIndex.Add(t - 1);
                    targets.Add(row[t]);
                }
            }
        }
        return new TokenRows
        {
            InputIds = tensor(flat, [rows, width]),
            PositionIds = pos is null ? null : tensor(pos, [rows, width]),
            RowIndex = tensor(rowOfToken.Select(r => (long)r).ToArray()),
            ColIndex = tensor(colIndex.ToArray()),
            Targets = tensor(targets.ToArray()),
            RowOfToken = rowOfToken.ToArray(),
            Rows = rows,
        };
    }

    /// <summary>Rows of prompt + completion whose completion tokens are scored (DPO, GRPO); <paramref name="scoredRow"/> false leaves a row's tokens out.</summary>
    public static TokenRows PromptCompletion(IReadOnlyList<(int[] Prompt, int[] Completion)> rows, Func<int, bool>? scoredRow = null) =>
        Build(rows.Select(r => (int[])[.. r.Prompt, .. r.Completion]).ToList(),
            (r, t) => t >= rows[r].Prompt.Length && (scoredRow?.Invoke(r) ?? true));

    /// <summary>Each row's sum of a per-token value [Tokens] (with autograd): [Rows].</summary>
    public Tensor RowSums(Tensor perToken)
    {
        var owner = zeros(Rows, Tokens, dtype: perToken.dtype);
        owner.index_put_(ones(Tokens, dtype: perToken.dtype), RowIndex, arange(Tokens, dtype: ScalarType.Int64));
        return owner.matmul(perToken);
    }
}
