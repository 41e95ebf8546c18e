"""Writes the twins of a UTF-8 CSV table the way plant software exports them.

usage: export_twins.py TABLE.csv OUT_DIR

- cp949.csv: the same CSV in CP949 (Korean Windows / MES exports), Python's own codec.
- unicode.txt: Excel's "Unicode text": UTF-16LE with a byte-order mark, tab separated.
- semicolon.csv: Excel's "CSV UTF-8" in a locale whose list separator is ';' (UTF-8 with BOM).
- book.xlsx: an Excel workbook written by openpyxl, cells typed as a person would have them:
  numbers as numbers, the TimeStamp column as Excel dates, everything else as text; a title
  row above the table is not written (the header is the first row).
"""
import csv
import datetime
import os
import sys

import openpyxl


def typed(column, text):
    if text == "":
        return None
    if column == "TimeStamp":
        try:
            return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return text
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def main():
    source, out = sys.argv[1], sys.argv[2]
    with open(source, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]

    def write(name, encoding, delimiter):
        with open(os.path.join(out, name), "w", newline="", encoding=encoding) as f:
            csv.writer(f, delimiter=delimiter, lineterminator="\r\n").writerows(rows)

    write("cp949.csv", "cp949", ",")
    write("unicode.txt", "utf-16", "\t")  # Python's utf-16 writes a BOM, little-endian here
    write("semicolon.csv", "utf-8-sig", ";")

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "shot_data"
    for i, row in enumerate(rows):
        if i == 0 or row == header:
            sheet.append(row)
        else:
            sheet.append([typed(header[j] if j < len(header) else "", c) for j, c in enumerate(row)])
    for cell in sheet["E"][1:]:
        if isinstance(cell.value, datetime.datetime):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
    book.save(os.path.join(out, "book.xlsx"))


if __name__ == "__main__":
    main()
