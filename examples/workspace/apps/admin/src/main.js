import { card, mount } from "@example/ui";
import "./style.css";

const banner = "Admin";
mount(
  document.getElementById("app"),
  card(banner, "Releases and deploys."),
  card("Deploy", "from @example/ui"),
  card("Roll back", "from @example/ui"),
);
