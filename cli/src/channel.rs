//! The channel options both `serve` commands share, with one help text and one set of
//! bounds: the largest frame (announced to every peer in the handshake) and the requests
//! in flight on each channel.

use clap::Args;

/// Bounds of `--frame-bytes-max`: a `Hello` must fit under the lower one; a connection's
/// worst-case memory is a few frames of the upper one.
pub const FRAME_BYTES_MAX_MIN: usize = wire::MIN_MAX_FRAME_LEN;
pub const FRAME_BYTES_MAX_LIMIT: usize = wire::MAX_FRAME_LEN_LIMIT;
/// Upper bound of `--channel-in-flight-max`.
pub const CHANNEL_IN_FLIGHT_MAX_LIMIT: u64 = 1_000_000;

fn frame_bytes_help() -> String {
    format!(
        "Largest frame body, in bytes, this node accepts and sends on any channel \
         ({FRAME_BYTES_MAX_MIN} to {FRAME_BYTES_MAX_LIMIT}). Announced to every peer in \
         the handshake: nobody sends this node a larger frame (a larger request is refused \
         to its sender with a clear error, the connection stays up), and a coordinator \
         rejects at submit a transaction whose Prepare would not fit its participant's limit"
    )
}

fn in_flight_help() -> String {
    format!(
        "Requests in flight on each channel to a cluster peer before later ones wait in its \
         queue, 1 to {CHANNEL_IN_FLIGHT_MAX_LIMIT}; 1 is stop-and-wait (for comparison with \
         pipelining) [default: the wire's pipeline limit, {}]",
        wire::config::DEFAULT_IN_FLIGHT_MAX
    )
}

/// `--frame-bytes-max` and `--channel-in-flight-max` of `coordinator serve` and
/// `participant serve`.
#[derive(Args, Debug, Clone)]
pub struct ChannelArgs {
    #[arg(long, help = frame_bytes_help(), default_value_t = wire::DEFAULT_MAX_FRAME_LEN as u64,
        value_parser = clap::value_parser!(u64)
            .range(FRAME_BYTES_MAX_MIN as u64..=FRAME_BYTES_MAX_LIMIT as u64))]
    frame_bytes_max: u64,
    #[arg(long, help = in_flight_help(),
        value_parser = clap::value_parser!(u64).range(1..=CHANNEL_IN_FLIGHT_MAX_LIMIT))]
    channel_in_flight_max: Option<u64>,
}

impl ChannelArgs {
    /// The frame limit, within its bounds (clap checked them).
    pub fn frame_bytes_max(&self) -> usize {
        usize::try_from(self.frame_bytes_max).unwrap_or(FRAME_BYTES_MAX_LIMIT)
    }

    /// The in-flight limit per channel; `None`: the wire's default.
    pub fn channel_in_flight_max(&self) -> Option<usize> {
        self.channel_in_flight_max
            .map(|max| usize::try_from(max).unwrap_or(usize::MAX))
    }

    /// Applies both to a node's channel settings.
    pub fn apply(&self, config: &mut wire::ChannelConfig) {
        config.set_max_frame_len(self.frame_bytes_max());
        if let Some(max) = self.channel_in_flight_max() {
            config.in_flight_max = max;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        channel: ChannelArgs,
    }

    #[test]
    fn the_defaults_are_the_wires_and_the_bounds_are_named_in_errors() {
        let cmd = Cmd::try_parse_from(["x"]).unwrap();
        assert_eq!(cmd.channel.frame_bytes_max(), wire::DEFAULT_MAX_FRAME_LEN);
        assert_eq!(cmd.channel.channel_in_flight_max(), None);
        let cmd = Cmd::try_parse_from(["x", "--frame-bytes-max", "65536"]).unwrap();
        let mut config = wire::ChannelConfig::new(wire::NodeId(1), wire::Role::Participant, "c");
        cmd.channel.apply(&mut config);
        assert_eq!((config.max_frame_len, config.validate()), (65536, Ok(())));
        for (flag, value) in [
            ("--frame-bytes-max", "1023"),
            ("--frame-bytes-max", "268435457"),
            ("--channel-in-flight-max", "0"),
        ] {
            let error = Cmd::try_parse_from(["x", flag, value])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(flag) && error.contains("is not in"),
                "{error}"
            );
        }
        let help = <Cmd as clap::CommandFactory>::command()
            .render_help()
            .to_string();
        assert!(help.contains("(1024 to 268435456)"), "{help}");
        assert!(help.contains("[default: 16777216]"), "{help}");
    }
}
