//! Wall-clock time from the CMOS real-time clock (ports 0x70/0x71), for the dump's timestamp.

use crate::arch::{inb, outb};

fn read(register: u8) -> u8 {
    // Bit 7 of the index keeps NMIs disabled while we talk to the RTC.
    outb(0x70, 0x80 | register);
    inb(0x71)
}

fn from_bcd(value: u8, binary: bool) -> u64 {
    if binary {
        u64::from(value)
    } else {
        u64::from((value >> 4) * 10 + (value & 0x0f))
    }
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Seconds since the Unix epoch (the RTC is UTC under QEMU's default `-rtc base=utc`); 0 if it looks bogus.
pub fn unix_time() -> u64 {
    // Wait (bounded) for no update in progress, so the fields are consistent.
    for _ in 0..100_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let status_b = read(0x0b);
    let binary = status_b & 0x04 != 0;
    let seconds = from_bcd(read(0x00), binary);
    let minutes = from_bcd(read(0x02), binary);
    let hours_raw = read(0x04);
    let pm = hours_raw & 0x80 != 0;
    let mut hours = from_bcd(hours_raw & 0x7f, binary);
    if status_b & 0x02 == 0 && pm {
        hours = (hours % 12) + 12; // 12-hour mode
    }
    let day = from_bcd(read(0x07), binary) as i64;
    let month = from_bcd(read(0x08), binary) as i64;
    let year = 2000 + from_bcd(read(0x09), binary) as i64;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return 0;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days).map_or(0, |days| days * 86_400 + hours * 3600 + minutes * 60 + seconds)
}
