from fieldvision.report.markdown import markdown_table, new_figure, save_figure, write_report


def test_markdown_table_formats_floats_and_keeps_column_order():
    table = markdown_table([{"b": 1.23456, "a": "x"}, {"b": float("nan"), "a": 2}], digits=2)
    assert table.splitlines() == ["| b | a |", "|---|---|", "| 1.23 | x |", "| nan | 2 |"]
    assert markdown_table([]) == ""


def test_figure_and_report_are_written(tmp_path):
    fig = new_figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    png = save_figure(fig, tmp_path / "f.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    md = write_report(tmp_path / "r.md", "Title", [("Part", "![f](f.png)")])
    assert md.read_text().startswith("# Title\n") and "## Part" in md.read_text()
